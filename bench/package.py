"""Issue 7's packaging figures: the code asset every function runs from, and what each
function's cold start costs under three ways of shipping it.

* **The asset**, bundled once by ``infra.functions.PipBundler`` (the code path ``make synth``
  runs: manylinux aarch64 wheels for Python 3.13, boto3 and its closure left out): its
  unpacked and zipped size, its largest distributions, and the share of the packages that
  only the leak webhook uses (cryptography and its cffi closure).
* **Cold start proxy**: a fresh interpreter of the Lambda runtime's Python version
  importing each function's handler module, against ``import boto3`` (median of 5). The
  asset's wheels are for aarch64, so the proxy imports the same pinned requirements
  installed for this machine. Three variants:

  - *as shipped*: sources only (``pip --no-compile``); ``/var/task`` is read-only in
    Lambda, so every cold start compiles every module it imports;
  - *Powertools layer*: Powertools from a separate folder holding its bytecode (as the
    public layer ships it), the rest as shipped;
  - *all bytecode*: every module precompiled for Python 3.13 with
    ``--invalidation-mode unchecked-hash`` (a zip's file times cannot invalidate it).

  ``boto3`` comes from a folder with its bytecode, as the runtime provides it. Times are
  CPU time (user + sys) of the child process, not wall time: the machine is shared, and a
  cold start's import phase is CPU-bound. No bytecode is written while measuring.
* **Tracing**: what Powertools' ``Tracer()`` adds to Logger + Metrics (tracing off), in this
  venv, which has aws-xray-sdk (the asset does not).
"""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.common import Section

ROOT: Final = Path(__file__).resolve().parent.parent
RUNS: Final = 5
LAMBDA_PYTHON: Final = "3.13"  # infra/functions.py: Runtime.PYTHON_3_13, pip --python-version
POWERTOOLS: Final = "aws_lambda_powertools"
# requirements.txt has cryptography for the leak webhook's ECDSA check; cffi and pycparser
# come with it. Nothing else imports them.
WEBHOOK_ONLY: Final = ("cryptography", "cffi", "pycparser")
UNZIPPED_LIMIT_MB: Final = 250  # Lambda: function + layers, unzipped
MB: Final = 1_000_000
CRYPTO_IMPORTS: Final = (
    "from cryptography.exceptions import InvalidSignature; "
    "from cryptography.hazmat.primitives import hashes; "
    "from cryptography.hazmat.primitives.asymmetric import ec; "
    "from cryptography.hazmat.primitives.serialization import load_pem_public_key"
)


@dataclass(frozen=True)
class Fn:
    name: str
    module: str
    memory_mb: int


def run() -> Section:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    sec = Section("package")
    functions = function_modules()
    with tempfile.TemporaryDirectory(prefix="tollgate-package-") as tmp:
        work = Path(tmp)
        _asset_figures(sec, work)
        python = lambda_python()
        _cold_start_figures(sec, functions, python, work)
    _tracer_figure(sec)
    return sec


# -- the functions -----------------------------------------------------------------------


def function_modules() -> list[Fn]:
    """Every function of the stack, from the CDK app itself (bundling skipped, no cdk-nag)."""
    from infra.app import build

    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    _, stack = build({**context, "aws:cdk:bundling-stacks": []}, nag=False)
    return [
        Fn(spec.name, spec.handler.rsplit(".", 1)[0], spec.memory_size)
        for spec in stack.functions.specs
    ]


# -- the asset -----------------------------------------------------------------------------


def _asset_figures(sec: Section, work: Path) -> None:
    from infra.functions import PipBundler

    asset = work / "asset"
    PipBundler().try_bundle(str(asset))
    dists = distributions(asset)
    unpacked = {name: sum(f.stat().st_size for f in files) for name, files in dists.items()}
    zipped = zip_sizes(asset, work / "asset.zip", dists)
    total_u, total_z = sum(unpacked.values()), sum(zipped.values())
    zip_file = (work / "asset.zip").stat().st_size
    sec.add(
        "code asset (all functions), unpacked",
        round(total_u / MB, 1),
        unit="MB",
        baseline=f"Lambda limit {UNZIPPED_LIMIT_MB} MB unzipped (function + layers)",
        target="report",
    )
    sec.add(
        "code asset, zipped (deflate)",
        round(zip_file / MB, 1),
        unit="MB",
        baseline=f"{len(list(asset.rglob('*')))} files and folders",
        target="report",
    )
    largest = sorted(unpacked, key=lambda n: -unpacked[n])[:6]
    sec.add(
        "largest distributions, unpacked / zipped MB",
        "; ".join(f"{n} {unpacked[n] / MB:.1f} / {zipped[n] / MB:.1f}" for n in largest),
        target="report",
    )
    webhook_u = sum(unpacked.get(n, 0) for n in WEBHOOK_ONLY)
    webhook_z = sum(zipped.get(n, 0) for n in WEBHOOK_ONLY)
    sec.add(
        "leak-webhook-only packages (cryptography, cffi, pycparser), unpacked / zipped",
        f"{webhook_u / MB:.1f} / {webhook_z / MB:.1f}",
        unit="MB",
        baseline=f"{100 * webhook_u / total_u:.0f} % / {100 * webhook_z / total_z:.0f} % "
        "of the asset every function loads",
        target="report",
    )
    sec.add(
        "Powertools' share of the asset, unpacked / zipped",
        f"{unpacked[POWERTOOLS] / MB:.1f} / {zipped[POWERTOOLS] / MB:.1f}",
        unit="MB",
        baseline="what the public layer would take out of the asset",
        target="report",
    )
    python = lambda_python()
    if python is not None:
        compiled = work / "asset-bytecode"
        shutil.copytree(asset, compiled)
        compile_tree(python, compiled)
        zip_sizes(compiled, work / "asset-bytecode.zip", distributions(compiled))
        zipped_c = (work / "asset-bytecode.zip").stat().st_size
        sec.add(
            "code asset with Python 3.13 bytecode, unpacked / zipped",
            f"{_tree_size(compiled) / MB:.1f} / {zipped_c / MB:.1f}",
            unit="MB",
            baseline=f"as shipped {total_u / MB:.1f} / {zip_file / MB:.1f} MB",
            target="report",
        )


def distributions(root: Path) -> dict[str, list[Path]]:
    """Every file under ``root``, by the distribution whose RECORD lists it (bytecode
    written after install: by the distribution owning its top folder); the files of no
    distribution (``functions/``) are Tollgate's own code."""
    owner: dict[Path, str] = {}
    tops: dict[str, str] = {}
    for dist_info in root.glob("*.dist-info"):
        name = dist_info.name.split("-")[0].lower()
        record = dist_info / "RECORD"
        lines = record.read_text().splitlines() if record.exists() else []
        for line in filter(None, lines):
            rel = line.split(",")[0]
            owner[(root / rel).resolve()] = name
            tops.setdefault(Path(rel).parts[0], name)
        for f in dist_info.rglob("*"):
            owner[f.resolve()] = name
    out: dict[str, list[Path]] = {}
    for f in root.rglob("*"):
        if f.is_file():
            top = f.relative_to(root).parts[0]
            found = owner.get(f.resolve()) or tops.get(top)
            if found is None:
                found = "functions (Tollgate)" if top == "functions" else top
            out.setdefault(found, []).append(f)
    return out


def zip_sizes(root: Path, target: Path, dists: dict[str, list[Path]]) -> dict[str, int]:
    """Zip ``root`` (deflate) and return the compressed bytes of each distribution."""
    by_file = {f: name for name, files in dists.items() for f in files}
    sizes: dict[str, int] = {}
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(by_file):
            zf.write(f, f.relative_to(root).as_posix())
        for info in zf.infolist():
            name = by_file[root / info.filename]
            sizes[name] = sizes.get(name, 0) + info.compress_size
    return sizes


def _tree_size(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


# -- cold start ------------------------------------------------------------------------------


def lambda_python() -> str | None:
    """An interpreter of the Lambda runtime's Python version on this machine, if any."""
    candidates = [shutil.which(f"python{LAMBDA_PYTHON}")]
    pyenv = Path.home() / ".pyenv" / "versions"
    if pyenv.is_dir():
        candidates += [
            str(p / "bin" / "python")
            for p in sorted(pyenv.glob(f"{LAMBDA_PYTHON}.*"), reverse=True)
        ]
    for candidate in candidates:
        if not candidate or not Path(candidate).exists():
            continue
        try:
            out = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            continue
        if out == LAMBDA_PYTHON:
            return candidate
    return None


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def _pip(python: str, *args: str) -> None:
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
        check=True,
        env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"},
    )


def host_bundle(python: str, out: Path) -> None:
    """What PipBundler builds, for this machine's platform and ``python``: the same
    requirements and sources, the same runtime-provided packages removed."""
    from infra.functions import FUNCTIONS_DIR, REQUIREMENTS, RUNTIME_PROVIDED, remove_distributions

    shutil.copytree(
        FUNCTIONS_DIR,
        out / FUNCTIONS_DIR.name,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache"),
    )
    _pip(
        python, "--no-compile", "--only-binary=:all:", "-r", str(REQUIREMENTS), "--target", str(out)
    )
    remove_distributions(out, RUNTIME_PROVIDED)
    shutil.rmtree(out / "bin", ignore_errors=True)


def compile_tree(python: str, root: Path) -> None:
    subprocess.run(
        [
            python,
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            str(root),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def cpu_ms(python: str, statement: str, path: list[Path], runs: int = RUNS) -> float:
    """Median CPU time (user + sys) of a fresh ``python`` running ``statement`` with
    ``path`` as PYTHONPATH, minus that of an empty one; no bytecode is written."""
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.pathsep.join(str(p) for p in path),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "Tollgate",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }

    def once(code: str) -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        # -S: no site-packages of this machine; only PYTHONPATH and the standard library.
        subprocess.run([python, "-S", "-c", code], check=True, env=env, cwd="/")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000

    empty = statistics.median(once("pass") for _ in range(runs))
    return statistics.median(once(statement) for _ in range(runs)) - empty


def compiled_from_source(python: str, module: str, path: list[Path]) -> int:
    """How many modules an import of ``module`` compiles from source (deterministic)."""
    code = (
        "import importlib.machinery as m\n"
        "n = [0]\n"
        "orig = m.SourceFileLoader.source_to_code\n"
        "def count(self, *a, **k):\n"
        "    n[0] += 1\n"
        "    return orig(self, *a, **k)\n"
        "m.SourceFileLoader.source_to_code = count\n"
        f"import {module}\n"
        "print(n[0])\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.pathsep.join(str(p) for p in path),
        "PYTHONDONTWRITEBYTECODE": "1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    out = subprocess.run(
        [python, "-S", "-c", code], check=True, env=env, cwd="/", capture_output=True, text=True
    )
    return int(out.stdout.strip().splitlines()[-1])


def loads_module(python: str, module: str, package: str, path: list[Path]) -> bool:
    """Whether importing ``module`` imports ``package`` too."""
    code = f"import sys, {module}; print({package!r} in sys.modules)"
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.pathsep.join(str(p) for p in path),
        "PYTHONDONTWRITEBYTECODE": "1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    out = subprocess.run(
        [python, "-S", "-c", code], check=True, env=env, cwd="/", capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1] == "True"


def _cold_start_figures(sec: Section, functions: list[Fn], python: str | None, work: Path) -> None:
    note = ""
    if python is None:
        python = sys.executable
        note = (
            f"no Python {LAMBDA_PYTHON} on this machine: measured with {platform.python_version()}"
        )
    source, layer, runtime = work / "source", work / "layer", work / "runtime"
    host_bundle(python, source)
    pins = _pins()
    _pip(
        python, "--target", str(runtime), f"boto3=={pins['boto3']}", f"botocore=={pins['botocore']}"
    )
    compile_tree(python, runtime)
    bytecode = work / "bytecode"
    shutil.copytree(source, bytecode)
    compile_tree(python, bytecode)
    # The layer variant: Powertools (compiled) moves out of the bundle.
    no_powertools = work / "source-without-powertools"
    shutil.copytree(source, no_powertools)
    layer.mkdir()
    for entry in no_powertools.glob(f"{POWERTOOLS}*"):
        shutil.move(str(entry), layer / entry.name)
    compile_tree(python, layer)

    variants = {
        "as shipped": [source, runtime],
        "Powertools layer": [no_powertools, layer, runtime],
        "all bytecode": [bytecode, runtime],
    }
    version = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    boto = cpu_ms(python, "import boto3", [runtime])
    sec.add(
        "import boto3 (runtime's, with bytecode), CPU",
        round(boto),
        unit="ms",
        baseline=f"Python {version} on {platform.machine()}, fresh process, median of {RUNS}",
        target="baseline",
        note=note,
    )
    seen: dict[str, str] = {}
    for fn in functions:
        title = f"{fn.name} ({fn.module}) import, CPU: as shipped / Powertools layer / all bytecode"
        if fn.module in seen:
            sec.add(
                title,
                "same module as " + seen[fn.module],
                target="report",
            )
            continue
        seen[fn.module] = fn.name
        times = {v: cpu_ms(python, f"import {fn.module}", path) for v, path in variants.items()}
        compiled = {
            v: compiled_from_source(python, fn.module, path)
            for v, path in variants.items()
            if v != "all bytecode"
        }
        sec.add(
            title,
            " / ".join(f"{t:.0f}" for t in times.values()),
            unit="ms",
            baseline=f"import boto3 {boto:.0f} ms; modules compiled from source: "
            f"{compiled['as shipped']} / {compiled['Powertools layer']} / 0",
            target="smallest wins",
            note=f"{fn.memory_mb} MB",
        )
    loading = sorted(
        fn.name
        for fn in functions
        if loads_module(python, fn.module, "cryptography", [source, runtime])
    )
    # TokenExchange verifies an RS256/ES256 signature on every exchange it does not refuse
    # for its form (functions/trust/verify.py): importing it at cold start or on the first
    # token costs the same. Every other function must not load it.
    needs = {"TokenExchange"}
    sec.add(
        "functions whose handler import loads cryptography",
        ", ".join(loading) or "none",
        baseline="the leak webhook imports it on its first signature check "
        "(functions/webhook/signature.py); TokenExchange verifies a signature per exchange",
        target="none but TokenExchange",
        ok=not set(loading) - needs,
    )
    crypto = cpu_ms(python, CRYPTO_IMPORTS, [source, runtime])
    sec.add(
        "cryptography's ECDSA imports (leak webhook, first signed report), CPU",
        round(crypto),
        unit="ms",
        baseline=f"import boto3 {boto:.0f} ms",
        target="report",
    )


# -- tracing ---------------------------------------------------------------------------------


def _tracer_figure(sec: Section) -> None:
    """Tracer() on top of Logger + Metrics, in this venv (aws-xray-sdk installed)."""
    python = sys.executable
    site = [Path(p) for p in sys.path if p.endswith("site-packages")]
    base = "from aws_lambda_powertools import Logger, Metrics; Logger(); Metrics()"
    with_tracer = base + "; from aws_lambda_powertools import Tracer; Tracer()"
    try:
        t_base = cpu_ms(python, base, site)
        t_tracer = cpu_ms(python, with_tracer, site)
    except subprocess.CalledProcessError:
        sec.add("Powertools Tracer() cold-start cost", "not measured (aws-xray-sdk missing)")
        return
    sec.add(
        "Powertools Tracer() on top of Logger + Metrics (tracing off), CPU",
        round(t_tracer - t_base),
        unit="ms",
        baseline=f"Logger + Metrics {t_base:.0f} ms; + Tracer {t_tracer:.0f} ms "
        f"(Python {platform.python_version()}, venv with bytecode)",
        target="report: decides where tracing runs",
    )
