"""The one place that builds a Lambda function, and the one code asset they all share.

Every function is Python 3.13 on arm64, runs the repo's ``functions/`` package from a single
asset, and gets: its own role with only the actions its :class:`FunctionSpec` lists, the
table variables of ``functions.common.config.TABLE_ENV`` for exactly the tables it uses, a
log group with the environment's retention, optional reserved concurrency and optional
X-Ray tracing. Adding a function is one :class:`FunctionSpec`::

    fns.add(FunctionSpec(
        "UsageAggregator", "functions.usage.handler.handler", service="usage",
        tables={"rollups": ("dynamodb:UpdateItem",)},
    ))

(A stream consumer's read permissions come from its ``DynamoEventSource``, which grants them.)

The asset is bundled on this machine without Docker (:class:`PipBundler`); its dependencies
are fetched once per change of ``requirements.txt`` and kept in ``.bundle/``, so a synth with
nothing changed needs no network (docs/architecture.md, "Packaging"). Tests skip
bundling with the App context ``aws:cdk:bundling-stacks: []``; CDK then points the asset at
the source folder and never calls the bundler.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import jsii
from aws_cdk import (
    AssetHashType,
    Aws,
    BundlingOptions,
    DockerImage,
    Duration,
    ILocalBundling,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from functions.common.config import TABLE_ENV
from functions.common.observability import DEFAULT_SERVICE, METRICS_NAMESPACE, SERVICE_ENV
from infra.nag import acknowledge
from infra.settings import Settings
from infra.tables import Tables

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR: Final = REPO_ROOT / "functions"
REQUIREMENTS: Final = REPO_ROOT / "requirements.txt"

# The Lambda Python runtime ships boto3 and its dependency closure. Bundling our own copies
# would add ~30 MB and shadow the runtime's versions (/var/task comes first on sys.path).
RUNTIME_PROVIDED: Final = (
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "urllib3",
    "python_dateutil",
    "six",
)

_INDEX_ACTIONS: Final = frozenset({"dynamodb:Query", "dynamodb:Scan"})


# pip's arguments besides the requirements and the target: Lambda's Python 3.13 on arm64,
# binary wheels only. Part of the dependency cache's key.
PIP_PLATFORM_ARGS: Final = (
    "--platform",
    "manylinux2014_aarch64",
    "--only-binary=:all:",
    "--python-version",
    "3.13",
    "--implementation",
    "cp",
)
# Where built dependency folders are kept between synths (gitignored; `make clean` removes it).
BUNDLE_CACHE: Final = REPO_ROOT / ".bundle"
# Bump when the bundling recipe changes in a way the keys below do not see: it changes every
# cache key and the asset hash.
BUNDLE_FORMAT: Final = "2"
_IGNORED: Final = ("__pycache__", "*.pyc", ".mypy_cache")


class BundlingError(RuntimeError):
    """The code asset could not be built; the message says why and what to do."""


@jsii.implements(ILocalBundling)
class PipBundler:
    """Bundles ``functions/`` plus the wheels of ``requirements.txt`` for Lambda's
    Python 3.13 on arm64 (manylinux2014_aarch64, binary wheels only), without Docker.

    The dependencies are installed once per :meth:`dependencies_key` (requirements.txt's
    text, pip's platform arguments, the packages left to the runtime, bytecode or not) into
    ``cache/deps-<key>`` and copied from there on every later bundle: a synth with nothing
    changed runs no pip and needs no network. :meth:`asset_hash` is known before bundling
    (that key plus the sources' content), so CDK finds ``cdk.out/asset.<hash>`` from an
    earlier synth and does not call the bundler at all.
    """

    def __init__(
        self,
        source: Path = FUNCTIONS_DIR,
        requirements: Path = REQUIREMENTS,
        python: str = sys.executable,
        cache: Path = BUNDLE_CACHE,
        bytecode: bool = True,
    ) -> None:
        self.source = source
        self.requirements = requirements
        self.python = python
        self.cache = cache
        # The runtime's Python, if this machine has one (bytecode, see precompile), or None.
        self.compiler = _python313() if bytecode else None

    # -- keys ---------------------------------------------------------------------------

    def dependencies_key(self) -> str:
        """What decides the dependency folder's content (not the requirements' path)."""
        recipe = {
            "format": BUNDLE_FORMAT,
            "requirements": self.requirements.read_text(),
            "pip": PIP_PLATFORM_ARGS,
            "runtime_provided": RUNTIME_PROVIDED,
            "bytecode": "cpython-3.13" if self.compiler else None,
        }
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()

    def source_fingerprint(self) -> str:
        """The content of ``functions/`` as bundled: paths and bytes, no bytecode or times."""
        digest = hashlib.sha256()
        for path in sorted(_source_files(self.source)):
            rel = path.relative_to(self.source).as_posix()
            digest.update(f"{rel}\0{path.stat().st_size}\0".encode())
            digest.update(path.read_bytes())
        return digest.hexdigest()

    def asset_hash(self) -> str:
        """The asset's hash, from what goes into it (``AssetHashType.CUSTOM``)."""
        return hashlib.sha256(
            f"{self.dependencies_key()}\0{self.source_fingerprint()}".encode()
        ).hexdigest()

    # -- building -----------------------------------------------------------------------

    def dependencies(self) -> Path:
        """The folder of installed dependencies for :meth:`dependencies_key`: built once
        (pip, with network), then reused. Written under a temporary name and renamed when
        complete, so a folder with the key's name is always whole."""
        layer = self.cache / f"deps-{self.dependencies_key()[:32]}"
        if layer.is_dir():
            return layer
        self.cache.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f"{layer.name}.", dir=self.cache))
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                [
                    self.python,
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--no-compile",  # compiled below, by the runtime's Python, if we have one
                    "--requirement",
                    str(self.requirements),
                    "--target",
                    str(building),
                    *PIP_PLATFORM_ARGS,
                ],
                check=False,
            )
            if done.returncode != 0:
                raise BundlingError(
                    f"pip could not install {self.requirements.name} for Lambda (exit "
                    f"{done.returncode}; no network or no package index?). The dependencies "
                    f"are fetched once per change of {self.requirements.name} and kept in "
                    f"{self.cache.name}/; run once with access to the package index."
                )
            remove_distributions(building, RUNTIME_PROVIDED)
            shutil.rmtree(building / "bin", ignore_errors=True)  # console scripts: never run
            if self.compiler:
                precompile(building, self.compiler)
            try:
                building.rename(layer)
            except OSError:
                if not layer.is_dir():  # else another synth built the same key first
                    raise
        finally:
            shutil.rmtree(building, ignore_errors=True)
        return layer

    def try_bundle(self, output_dir: str, *_args: Any, **_options: Any) -> bool:
        """CDK's callback: the asset into ``output_dir``. On failure ``output_dir`` is
        removed (CDK would leave it behind as ``cdk.out/...-building``) and the error
        raised."""
        out = Path(output_dir)
        try:
            shutil.copytree(self.dependencies(), out, symlinks=True, dirs_exist_ok=True)
            shutil.copytree(
                self.source,
                out / self.source.name,
                ignore=shutil.ignore_patterns(*_IGNORED),
                dirs_exist_ok=True,
            )
            if self.compiler:
                precompile(out / self.source.name, self.compiler)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            raise
        return True


def _source_files(root: Path) -> list[Path]:
    """The files ``try_bundle`` copies from ``root`` (``_IGNORED`` left out)."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not _ignored(d)]
        files += [Path(dirpath) / f for f in filenames if not _ignored(f)]
    return files


def _ignored(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in _IGNORED)


def _python313() -> str | None:
    for candidate in (os.environ.get("TOLLGATE_PYTHON313"), shutil.which("python3.13")):
        if not candidate:
            continue
        probe = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [candidate, "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 13))"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return candidate
    return None


def precompile(out: Path, python: str | None = None) -> bool:
    """Ship bytecode for the runtime's Python (3.13) when this machine has one.

    Lambda's code folder is read-only, so without .pyc files every cold start compiles every
    module it imports (measured: authorizer import 379 ms as sources, 160 ms precompiled;
    bench/REPORT.md "package"). ``unchecked-hash`` keeps the output, and so the asset hash,
    deterministic. The interpreter is ``TOLLGATE_PYTHON313`` or ``python3.13`` on the PATH,
    used only if it really is a 3.13; without one the asset ships sources (still correct).
    """
    python = python or _python313()
    if python is None:
        return False
    subprocess.run(  # noqa: S603 - fixed argv, no shell
        [
            python,
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            str(out),
        ],
        check=True,
    )
    return True


def remove_distributions(target: Path, names: Sequence[str]) -> None:
    """Delete installed distributions from a ``pip --target`` folder, file by file (RECORD)."""
    wanted = {n.lower().replace("-", "_") for n in names}
    for dist_info in target.glob("*.dist-info"):
        dist = dist_info.name.split("-")[0].lower().replace("-", "_")
        if dist not in wanted:
            continue
        record = dist_info / "RECORD"
        files = [line.split(",")[0] for line in record.read_text().splitlines() if line]
        for rel in files:
            path = (target / rel).resolve()
            if path.is_relative_to(target.resolve()) and path.is_file():
                path.unlink()
        shutil.rmtree(dist_info, ignore_errors=True)
    for folder in sorted((p for p in target.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def code_asset(bundler: PipBundler | None = None) -> lambda_.Code:
    """The one code asset of every function, hashed by what goes into it
    (:meth:`PipBundler.asset_hash`): CDK knows the hash before bundling, reuses
    ``cdk.out/asset.<hash>`` when it is there, and bundles straight into it otherwise (no
    ``bundling-temp-*`` folder)."""
    bundler = bundler or PipBundler()
    return lambda_.Code.from_asset(
        str(bundler.source),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=bundler.asset_hash(),
        bundling=BundlingOptions(
            # Never pulled: PipBundler always bundles locally. CDK requires an image.
            image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.13"),
            local=bundler,
        ),
    )


@dataclass(frozen=True)
class FunctionSpec:
    """What one function is and may do.

    ``tables`` maps a table kind to the DynamoDB actions the function performs on it; it
    decides both the role's statements and the ``TOLLGATE_TABLE_*`` variables the function
    gets. ``statements`` are any other permissions (Bedrock, Secrets Manager, ...).
    ``service`` names the function in its logs and metrics (:attr:`service_name`); no two
    functions of a stack share one.
    """

    name: str
    handler: str
    service: str
    tables: Mapping[str, Sequence[str]] = field(default_factory=dict)
    statements: Sequence[iam.PolicyStatement] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    memory_size: int = 256
    timeout: Duration = field(default_factory=lambda: Duration.seconds(10))
    reserved_concurrency: int | None = None
    tracing: bool = False
    p99_alarm_ms: int | None = None  # alarm when p99 duration stays above this

    @property
    def service_name(self) -> str:
        """``POWERTOOLS_SERVICE_NAME``: the ``service`` of every log line and the ``service``
        dimension of every metric the function writes (``tollgate-authorizer``, ...)."""
        return f"{DEFAULT_SERVICE}-{self.service}"


class Functions(Construct):
    """Builds functions from :class:`FunctionSpec` s, all from one shared code asset."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        tables: Tables,
        code: lambda_.Code | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.settings = settings
        self.tables = tables
        self.code = code or code_asset()
        self.functions: dict[str, lambda_.Function] = {}
        self.specs: list[FunctionSpec] = []

    def add(self, spec: FunctionSpec) -> lambda_.Function:
        taken = {s.service_name: s.name for s in self.specs}
        if spec.service_name in taken:
            raise ValueError(
                f"{spec.name}: service {spec.service!r} is {taken[spec.service_name]}'s; "
                "each function logs and reports metrics under its own service name"
            )
        scope = Construct(self, spec.name)
        role = iam.Role(
            scope,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Tollgate {spec.name}: only the actions this function uses",
        )
        log_group = logs.LogGroup(
            scope,
            "Logs",
            retention=self.settings.log_retention,
            removal_policy=self.settings.removal_policy,
        )
        # Only its own log group: no AWSLambdaBasicExecutionRole (logs:* on every group).
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        for statement in self._table_statements(spec):
            role.add_to_policy(statement)
        for statement in spec.statements:
            role.add_to_policy(statement)

        environment = {
            SERVICE_ENV: spec.service_name,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "LOG_LEVEL": self.settings.log_level,
            **{TABLE_ENV[kind]: self.tables.tables[kind].table_name for kind in spec.tables},
            **spec.environment,
        }
        if not spec.tracing:
            environment["POWERTOOLS_TRACE_DISABLED"] = "true"
        function = lambda_.Function(
            scope,
            "Function",
            description=spec.description or f"Tollgate {spec.name}",
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=lambda_.Architecture.ARM_64,
            code=self.code,
            handler=spec.handler,
            role=role,
            environment=environment,
            memory_size=spec.memory_size,
            timeout=spec.timeout,
            reserved_concurrent_executions=spec.reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE if spec.tracing else lambda_.Tracing.DISABLED,
            log_group=log_group,
        )
        acknowledge(
            function,
            "AwsSolutions-L1",
            "Python 3.13 is chosen on purpose: the bundled wheels are built for cp313 "
            "(PipBundler --python-version 3.13) and the code is tested on it; the runtime and "
            "the bundler's target move together, in one change, with the tests.",
        )
        self.functions[spec.name] = function
        self.specs.append(spec)
        return function

    def _table_statements(self, spec: FunctionSpec) -> list[iam.PolicyStatement]:
        statements = []
        for kind, actions in spec.tables.items():
            table = self.tables.tables[kind]
            resources = [table.table_arn]
            if _INDEX_ACTIONS & set(actions):
                resources += [
                    f"{table.table_arn}/index/{name}" for name in self.tables.indexes[kind]
                ]
            statements.append(iam.PolicyStatement(actions=sorted(actions), resources=resources))
        if statements:
            # Tables are encrypted with the CMK: DynamoDB decrypts the
            # table key with the caller's credentials, so the role needs kms:Decrypt, and
            # only when the call comes through DynamoDB in this region.
            statements.append(
                iam.PolicyStatement(
                    actions=["kms:Decrypt"],
                    resources=[self.tables.key.key_arn],
                    conditions={
                        "StringEquals": {"kms:ViaService": f"dynamodb.{Aws.REGION}.amazonaws.com"}
                    },
                )
            )
        return statements
