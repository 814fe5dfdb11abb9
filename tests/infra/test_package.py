"""What ships with the stack: the packaging figures' helpers (bench/package.py), and the
operator docs that must say what the code does (outputs, context keys, tables, and every
test the threat model cites)."""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

import pytest

from bench import package
from functions.common.models import TABLES, table_schema
from tests.infra.conftest import ROOT, Synth

DOCS = ROOT / "docs"


# -- bench/package.py ---------------------------------------------------------------------------


def _dist(root: Path, name: str, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    info = root / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "RECORD").write_text("".join(f"{rel},,\n" for rel in files))


def test_files_are_attributed_to_their_distribution(tmp_path: Path) -> None:
    _dist(tmp_path, "alpha", {"alpha/__init__.py": "x = 1\n", "_alpha_ext.so": "bin"})
    _dist(tmp_path, "beta", {"beta.py": "y = 2\n"})
    (tmp_path / "functions").mkdir()
    (tmp_path / "functions" / "handler.py").write_text("z = 3\n")
    # bytecode written after install is in no RECORD: it goes with its top folder
    (tmp_path / "alpha" / "__pycache__").mkdir()
    (tmp_path / "alpha" / "__pycache__" / "__init__.cpython-313.pyc").write_bytes(b"\0" * 10)

    dists = package.distributions(tmp_path)

    assert {f.name for f in dists["alpha"]} >= {"__init__.py", "_alpha_ext.so", "RECORD"}
    assert "__init__.cpython-313.pyc" in {f.name for f in dists["alpha"]}
    assert {f.name for f in dists["beta"]} == {"beta.py", "RECORD"}
    assert [f.name for f in dists["functions (Tollgate)"]] == ["handler.py"]


def test_zip_sizes_add_up_to_the_archive(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    _dist(root, "alpha", {"alpha/a.py": "a = 1\n" * 500})
    _dist(root, "beta", {"beta.py": "b = 2\n" * 50})
    target = tmp_path / "out.zip"

    sizes = package.zip_sizes(root, target, package.distributions(root))

    with zipfile.ZipFile(target) as zf:
        infos = zf.infolist()
    assert sum(sizes.values()) == sum(i.compress_size for i in infos)
    assert len(infos) == 4  # two sources, two RECORDs
    assert sizes["alpha"] < 500 * 6  # deflated


def test_cpu_time_of_an_import_is_measured_against_an_empty_interpreter(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text("total = sum(range(3_000_000))\n")
    python = sys.executable
    slow = package.cpu_ms(python, "import slow", [tmp_path], runs=3)
    assert slow > 5
    assert package.compiled_from_source(python, "slow", [tmp_path]) == 1
    assert not package.loads_module(python, "slow", "json", [tmp_path])


# -- the docs say what the code does ------------------------------------------------------------


def test_deploy_doc_lists_exactly_the_stacks_outputs(dev: Synth) -> None:
    text = (DOCS / "deploy.md").read_text()
    table = text[text.index("## 4. The stack's outputs") : text.index("## 5.")]
    documented = set(re.findall(r"`([A-Z]\w+)`", table))
    assert documented == set(dev.outputs)


def test_deploy_doc_lists_every_context_key_settings_reads() -> None:
    source = (ROOT / "infra" / "settings.py").read_text()
    read = set(re.findall(r'get\("(\w+)"\)', source))
    text = (DOCS / "deploy.md").read_text()
    table = text[text.index("Context keys") : text.index("What `env_name` changes")]
    documented = set(re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE))
    assert read == documented
    readme = (ROOT / "README.md").read_text()
    deploy = readme[readme.index("## Deploy") :]
    assert all(f"`{key}`" in deploy for key in read)


def test_architecture_table_of_tables_matches_the_models() -> None:
    text = (DOCS / "architecture.md").read_text()
    rows = {
        m.group(1): [c.strip() for c in m.group(0).strip("|").split("|")]
        for m in re.finditer(r"^\| (\w+) \(`\w+`\) \|.*$", text, re.MULTILINE)
    }
    assert set(rows) == {spec.kind for spec in TABLES}
    for spec in TABLES:
        _, partition, sort, indexes, stream, ttl, _ = rows[spec.kind]
        schema = table_schema(spec)
        keys = {k["KeyType"]: k["AttributeName"] for k in schema["KeySchema"]}
        assert partition.startswith(f"`{keys['HASH']}`"), spec.kind
        assert sort.startswith(f"`{keys['RANGE']}`") if "RANGE" in keys else sort == "—"
        for gsi in schema["GlobalSecondaryIndexes"]:
            names = ", ".join(f"`{k['AttributeName']}`" for k in gsi["KeySchema"])
            projection = gsi["Projection"]["ProjectionType"]
            assert f"`{gsi['IndexName']}` ({names}; {projection})" in indexes, spec.kind
        assert indexes.count("`by_") == len(schema["GlobalSecondaryIndexes"]), spec.kind
        assert stream == (spec.stream or "—"), spec.kind
        assert ttl == (f"`{spec.ttl}`" if spec.ttl else "—"), spec.kind


def _tests_defined() -> set[str]:
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        rel = path.relative_to(ROOT).as_posix()
        for name in re.findall(r"^(?:    )?def (test_\w+)", path.read_text(), re.MULTILINE):
            names.add(f"{rel}::{name}")
    return names


@pytest.mark.parametrize(
    "doc", ["threat-model.md", "architecture.md", "operations.md", "deploy.md", "capacity.md"]
)
def test_every_test_a_doc_cites_exists(doc: str) -> None:
    """`tests/x.py::test_y` (and `::test_z` after it, same file) must name a real test."""
    text = (DOCS / doc).read_text()
    defined = _tests_defined()
    cited, last = [], None
    for m in re.finditer(r"`(tests/[\w/]+\.py)?::\s*(test_\w+)`", text):
        last = m.group(1) or last
        assert last is not None, m.group(0)
        cited.append(f"{last}::{m.group(2)}")
    missing = [c for c in cited if c not in defined]
    assert not missing, missing
    for path in re.findall(r"`((?:functions|infra|tollgate|bench|tests)/[\w/.]+\.py)", text):
        assert (ROOT / path).exists(), path
