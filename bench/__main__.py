"""``make bench``: run every benchmark section and write bench/REPORT.md + bench/report.json.

Sections: ``python -m bench gate api`` runs only those; no argument runs all.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import platform
import sys
import time
from pathlib import Path

from bench.common import Figure, Section

SECTIONS = (
    "gate",
    "scale",
    "api",
    "spend",
    "streaming",
    "usage",
    "detect",
    "package",
    "soak",
    "peers",
    "pricing",
    "keyattrs",  # issue 15: networks, tags, per-key limits (bench/keyattrs.py)
    "trust",  # issue 15: the OIDC token exchange (bench/trust.py)
    "notices",  # threshold notices (issue 14)
    "billing",  # billing export (issue 14 item 5)
)
HERE = Path(__file__).parent


def machine() -> dict[str, str]:
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) // 1024 // 1024} GiB"
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "memory": mem,
        "aws": "moto server (in-process thread, requests serialised), no network",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def render(sections: list[Section], info: dict[str, str]) -> str:
    lines = [
        "# Tollgate benchmark report",
        "",
        "Produced by `make bench`. Each figure is a count or a ratio against a baseline "
        "measured in the same run on the same machine (medians unless said).",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()),
        "",
    ]
    for sec in sections:
        lines += [
            f"## {sec.name}",
            "",
            "| figure | value | baseline (same run) | target | met |",
            "| --- | --- | --- | --- | --- |",
        ]
        for f in sec.figures:
            met = "" if f.ok is None else ("yes" if f.ok else "**no**")
            lines.append(f"| {f.name} | {f.value} {f.unit} | {f.baseline} | {f.target} | {met} |")
        lines.append("")
    return "\n".join(lines)


def _merge_previous(fresh: list[Section]) -> list[Section]:
    """Running some sections keeps the other sections' figures of the last full run."""
    path = HERE / "report.json"
    if not path.exists():
        return fresh
    try:
        old = json.loads(path.read_text())["figures"]
    except (ValueError, KeyError):
        return fresh
    ran = {s.name for s in fresh}
    kept: dict[str, Section] = {}
    for fig in old:
        if fig.get("section") not in ran:
            kept.setdefault(fig["section"], Section(fig["section"])).figures.append(Figure(**fig))
    return [*kept.values(), *fresh]


def main(argv: list[str]) -> int:
    wanted = argv or list(SECTIONS)
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        print(
            f"bench: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}",
            file=sys.stderr,
        )
        return 2
    from bench.env import moto_tables

    sections: list[Section] = []
    with moto_tables() as server:
        for name in wanted:
            try:
                module = importlib.import_module(f"bench.{name}")
            except ModuleNotFoundError:
                print(f"[{name}] not built yet, skipped", flush=True)
                continue
            print(f"[{name}]", flush=True)
            # A section that takes the server gets it (for its write meter: server.metered()).
            wants_server = "server" in inspect.signature(module.run).parameters
            sections.append(module.run(server) if wants_server else module.run())
    info = machine()
    sections = _merge_previous(sections)
    (HERE / "REPORT.md").write_text(render(sections, info))
    (HERE / "report.json").write_text(
        json.dumps(
            {"machine": info, "figures": [f.as_dict() for s in sections for f in s.figures]},
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {HERE / 'REPORT.md'} and {HERE / 'report.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
