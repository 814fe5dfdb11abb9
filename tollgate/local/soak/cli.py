"""``python -m tollgate.local.soak`` (``make soak``): options, the table, the exit code."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from tollgate.local.faults import FaultPlan, FaultSpecError, new_seed
from tollgate.local.soak.harness import Soak
from tollgate.local.soak.model import DEFAULT_FAULTS, Row, SoakConfig


# -- output ------------------------------------------------------------------------------
def render(rows: list[Row]) -> str:
    width = max(len(r.name) for r in rows)
    lines = []
    group = ""
    for r in rows:
        if r.group != group:
            group = r.group
            lines.append(f"\n[{group}]")
        mark = "" if r.ok is None else ("ok  " if r.ok else "FAIL")
        target = f"(target {r.target})" if r.target else ""
        lines.append(f"  {mark:4} {r.name:<{width}}  {r.value!s:>8} {target}")
        if r.note:
            lines.append(f"       {'':<{width}}  {r.note}")
    return "\n".join(lines)


def passed(rows: list[Row]) -> bool:
    return all(r.ok is not False for r in rows)


def parse_args(argv: list[str]) -> tuple[SoakConfig, str | None]:
    parser = argparse.ArgumentParser(
        prog="python -m tollgate.local.soak",
        description="Drive the local stack under load and faults, then check every invariant.",
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (60)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the traffic and the fault draws (default: a new one, printed); "
        "the seed of a run replays it",
    )
    parser.add_argument(
        "--min-requests",
        type=int,
        default=0,
        metavar="N",
        help="the clients go on past --duration until N requests were sent (0)",
    )
    parser.add_argument(
        "--faults", default=DEFAULT_FAULTS, help=f"fault shares ({DEFAULT_FAULTS}); '' for none"
    )
    parser.add_argument(
        "--outage-every", type=float, default=20.0, help="seconds between outages (20; 0: none)"
    )
    parser.add_argument("--outage", type=float, default=1.0, help="seconds each outage lasts (1)")
    parser.add_argument("--drain-timeout", type=float, default=180.0)
    parser.add_argument(
        "--extra-keys", type=int, default=2000, metavar="N",
        help="keys issued to one tenant before the run, half revoked (2000)",
    )  # fmt: skip
    parser.add_argument("--json", metavar="PATH", help="also write the table as JSON")
    parser.add_argument("--log", metavar="PATH", help="the functions' log (default: tmp)")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 3600:
        parser.error("--duration must be within 1..3600 seconds")
    if not 1 <= args.clients <= 256:
        parser.error("--clients must be within 1..256")
    if args.seed is not None and not 0 <= args.seed < 2**63:
        parser.error("--seed must be within 0..2**63-1")
    if not 0 <= args.min_requests <= 1_000_000:
        parser.error("--min-requests must be within 0..1000000")
    if not 0 <= args.extra_keys <= 1_000_000:
        parser.error("--extra-keys must be within 0..1000000")
    if args.outage_every < 0 or args.outage < 0 or args.drain_timeout <= 0:
        parser.error("--outage-every, --outage and --drain-timeout must be positive")
    try:
        plan = FaultPlan.parse(args.faults)
    except FaultSpecError as exc:
        parser.error(f"--faults: {exc}")
    config = SoakConfig(
        duration_s=args.duration,
        clients=args.clients,
        seed=new_seed() if args.seed is None else args.seed,
        min_requests=args.min_requests,
        faults=plan,
        outage_every_s=args.outage_every,
        outage_s=args.outage,
        drain_timeout_s=args.drain_timeout,
        log_path=args.log,
        extra_keys=args.extra_keys,
    )
    return config, args.json


def main(argv: list[str] | None = None) -> int:
    config, json_path = parse_args(sys.argv[1:] if argv is None else argv)
    soak = Soak(config)
    print(
        f"soak: seed {config.seed}, {config.duration_s:.0f} s"
        f"{f' (at least {config.min_requests} requests)' if config.min_requests else ''}, "
        f"{config.clients} clients, faults {asdict(config.faults)}, outages "
        f"{config.outage_s}s every {config.outage_every_s}s",
        flush=True,
    )
    rows = soak.run()
    ok = passed(rows)
    print(render(rows))
    for line in soak.events:
        print(f"  mid-run: {line}")
    print(f"\nfunctions' log: {soak.log_path}")
    print(f"seed {config.seed}; replay: {config.replay()}")
    print("soak: all invariants hold" if ok else "soak: INVARIANTS FAILED", flush=True)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "config": config.as_dict(),
                    "seed": config.seed,
                    "ok": ok,
                    "rows": [asdict(r) for r in rows],
                    "events": soak.events,
                },
                f,
                indent=2,
                default=str,
            )
    return 0 if ok else 1
