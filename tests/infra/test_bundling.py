"""A second synth with nothing changed works offline and leaves nothing behind (issue 11,
finding 6): the bundler's dependency cache, the asset hash known before bundling, and no
``cdk.out/bundling-temp-*`` or ``*-building`` folder, with the real pip and the real CDK.

pip never reaches a network here: the first install reads wheels built by the test from a
local folder (``PIP_NO_INDEX``, ``PIP_FIND_LINKS``); afterwards that folder is gone and pip
is pointed at an address where nothing listens, so any pip run fails.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.functions import PipBundler, code_asset

OFFLINE_INDEX = "http://127.0.0.1:9/simple"  # the discard port: nothing listens


def build_wheel(folder: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A pure-Python wheel (``py3-none-any``: fits pip's ``--platform manylinux2014_aarch64``)."""
    dist_info = f"{name}-{version}.dist-info"
    entries = {
        **files,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: tollgate-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }

    def digest(text: str) -> str:
        raw = hashlib.sha256(text.encode()).digest()
        return "sha256=" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    record = "".join(
        f"{path},{digest(text)},{len(text.encode())}\n" for path, text in entries.items()
    )
    entries[f"{dist_info}/RECORD"] = record + f"{dist_info}/RECORD,,\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in entries.items():
            zf.writestr(path, text)
    return wheel


class Project:
    """A tiny project: ``functions/`` sources, a requirements file, wheels, a cache."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.source = root / "functions"
        (self.source / "common").mkdir(parents=True)
        (self.source / "__init__.py").write_text("")
        (self.source / "common" / "__init__.py").write_text("")
        (self.source / "handler.py").write_text("def handler(event, context):\n    return 1\n")
        self.requirements = root / "requirements.txt"
        self.requirements.write_text("tinydep==1.0\nsix==1.0\n")
        self.wheels = root / "wheels"
        build_wheel(self.wheels, "tinydep", "1.0", {"tinydep/__init__.py": "VALUE = 1\n"})
        build_wheel(self.wheels, "six", "1.0", {"six.py": ""})  # the runtime provides it
        self.cache = root / ".bundle"
        self.bundles: list[str] = []  # every output folder a bundler was asked to fill

    def bundler(self) -> PipBundler:
        bundles = self.bundles

        class Recording(PipBundler):
            def try_bundle(self, output_dir: str, *args: Any, **options: Any) -> bool:
                bundles.append(output_dir)
                return super().try_bundle(output_dir, *args, **options)

        return Recording(self.source, self.requirements, cache=self.cache, bytecode=False)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """Pip isolated from this machine's configuration and from any network."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_ROOT_USER_ACTION", "ignore")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "wheels"))
    return Project(tmp_path)


def go_offline(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on a pip run can only fail: no wheels, an index where nothing listens."""
    for wheel in project.wheels.iterdir():
        wheel.unlink()
    monkeypatch.delenv("PIP_NO_INDEX")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_INDEX_URL", OFFLINE_INDEX)


@pytest.fixture
def pip_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Records every ``pip install`` the bundler starts (and runs it for real)."""
    runs: list[list[str]] = []
    real: Callable[..., Any] = subprocess.run

    def recording(argv: list[str], *args: Any, **kwargs: Any) -> Any:
        if "pip" in argv:
            runs.append(argv)
        return real(argv, *args, **kwargs)

    monkeypatch.setattr("infra.functions.subprocess.run", recording)
    return runs


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.name.startswith("bundling-temp-") or p.name.endswith("-building")
    )


def synth(project: Project, outdir: Path) -> Path:
    """A stack with one function on :func:`code_asset`, bundling on; its staged asset."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_lambda as lambda_

    app = App(outdir=str(outdir))
    stack = Stack(app, "BundleTest")
    lambda_.Function(
        stack,
        "Fn",
        runtime=lambda_.Runtime.PYTHON_3_13,
        architecture=lambda_.Architecture.ARM_64,
        handler="functions.handler.handler",
        code=code_asset(project.bundler()),
    )
    app.synth()
    (asset,) = [p for p in outdir.iterdir() if p.name.startswith("asset.")]
    return asset


# -- the bundler ---------------------------------------------------------------------------------


def test_second_bundle_reuses_the_dependency_cache_without_network(
    project: Project, pip_runs: list[list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Finding 6: the wheels are fetched once; the second bundle runs no pip at all."""
    first = tmp_path / "out1"
    assert project.bundler().try_bundle(str(first)) is True
    assert len(pip_runs) == 1
    assert (first / "tinydep" / "__init__.py").read_text() == "VALUE = 1\n"
    assert (first / "functions" / "handler.py").is_file()
    assert not (first / "six.py").exists()  # left to the runtime
    (layer,) = project.cache.iterdir()
    assert layer.name == f"deps-{project.bundler().dependencies_key()[:32]}"

    go_offline(project, monkeypatch)
    second = tmp_path / "out2"
    assert project.bundler().try_bundle(str(second)) is True
    assert len(pip_runs) == 1, "the second bundle ran pip"
    assert tree(second) == tree(first)


def test_a_bundle_that_cannot_fetch_leaves_nothing_behind(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No network and no cache: a clear error, no half-built cache, no output folder."""
    go_offline(project, monkeypatch)
    out = tmp_path / "out"
    out.mkdir()  # CDK creates it before calling the bundler
    with pytest.raises(RuntimeError, match=r"pip could not install requirements\.txt"):
        project.bundler().try_bundle(str(out))
    assert not out.exists()
    assert not project.cache.exists() or not any(project.cache.iterdir())


def test_the_keys_follow_the_content_only(project: Project) -> None:
    bundler = project.bundler()
    deps, asset = bundler.dependencies_key(), bundler.asset_hash()
    # bytecode, editor caches and file times are not content
    (project.source / "__pycache__").mkdir()
    (project.source / "__pycache__" / "handler.cpython-313.pyc").write_bytes(b"\0")
    os.utime(project.source / "handler.py", (0, 0))
    assert (bundler.dependencies_key(), bundler.asset_hash()) == (deps, asset)
    # a source change changes the asset, not the dependencies
    (project.source / "handler.py").write_text("def handler(event, context):\n    return 2\n")
    assert bundler.dependencies_key() == deps and bundler.asset_hash() != asset
    # a requirements change changes both
    project.requirements.write_text("tinydep==1.0\n")
    assert bundler.dependencies_key() != deps
    # bytecode or not is part of the recipe
    with_bytecode = project.bundler()
    with_bytecode.compiler = "python3.13"
    assert with_bytecode.dependencies_key() != bundler.dependencies_key()


# -- through CDK ---------------------------------------------------------------------------------


def test_second_synth_offline_does_not_bundle_and_leaves_no_temp_folder(
    project: Project, pip_runs: list[list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Finding 6 as ``make synth`` meets it: synth, then synth again offline into the same
    ``cdk.out`` (the asset is found by its hash: the bundler is not even called), then into
    an empty one (bundled from the cache, no pip); the same asset each time, no
    ``bundling-temp-*``/``*-building`` folder left."""
    outdir = tmp_path / "cdk.out"
    asset = synth(project, outdir)
    assert len(pip_runs) == 1
    assert (asset / "tinydep" / "__init__.py").is_file()
    assert (asset / "functions" / "handler.py").is_file()
    assert leftovers(outdir) == []
    first = tree(asset)

    # bundled straight into its final folder: the hash was known before bundling
    assert project.bundles == [f"{asset}-building"]

    go_offline(project, monkeypatch)
    again = synth(project, outdir)
    assert again == asset and tree(again) == first
    assert len(project.bundles) == 1, "CDK bundled again though nothing changed"
    assert len(pip_runs) == 1
    assert leftovers(outdir) == []

    fresh = tmp_path / "cdk.out.fresh"
    rebuilt = synth(project, fresh)
    assert rebuilt.name == asset.name and tree(rebuilt) == first
    assert len(project.bundles) == 2
    assert len(pip_runs) == 1, "bundling from the cache ran pip"
    assert leftovers(fresh) == []


def test_a_synth_that_cannot_bundle_leaves_no_temp_folder(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """0.1.0 left ``cdk.out/bundling-temp-<key>-building`` after a failed bundling."""
    go_offline(project, monkeypatch)
    outdir = tmp_path / "cdk.out"
    with pytest.raises(RuntimeError, match=r"pip could not install requirements\.txt"):
        synth(project, outdir)
    assert leftovers(outdir) == []
    assert not [p for p in outdir.iterdir() if p.name.startswith("asset.")]
