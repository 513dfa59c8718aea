"""The shape of the code that docs/architecture.md describes: the one-way import rule, no Qt or
torch behind the `art2mus` command or in the engine's start path, and the CLI naming scheme."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from art2mus.cli import COMMANDS

ROOT = Path(__file__).resolve().parent.parent

# package -> top-level packages it must never import (docs/architecture.md, "Imports").
FORBIDDEN = {
    "engine": {"art2mus", "installation", "training", "PyQt6"},
    "installation": {"art2mus", "training"},
    "training": {"art2mus", "installation", "PyQt6"},
}
HEAVY = {"torch", "diffusers", "transformers", "accelerate", "onnx", "onnxruntime", "onnxscript", "ray"}


def _imports(tree: ast.AST, *, module_level_only: bool) -> set[str]:
    """Top-level names of absolute imports; with module_level_only, not those inside functions
    (a lazy import runs only when its function does)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if module_level_only and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name.split(".")[0] for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.add(child.module.split(".")[0])
            visit(child)

    visit(tree)
    return found


def _modules(package: str):
    for path in sorted((ROOT / package).rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_flow_one_way(package):
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path, tree in _modules(package)
        for name in sorted(_imports(tree, module_level_only=False) & FORBIDDEN[package])
    ]
    assert not bad, bad


def test_heavy_imports_stay_inside_the_diffusion_engine():
    """Only the diffusion engine's own modules import torch & co. when they are imported."""
    diffusion = ROOT / "engine" / "engines" / "diffusion"
    bad = [
        f"{path.relative_to(ROOT)} imports {name} at module level"
        for package in ("engine", "installation", "art2mus")
        for path, tree in _modules(package)
        if diffusion not in path.parents
        for name in sorted(_imports(tree, module_level_only=True) & HEAVY)
    ]
    assert not bad, bad


def test_every_command_lives_in_a_cli_module_named_by_the_scheme():
    """`cli.py` of the package a command drives, or `NAME_cli.py` where one package drives
    several commands (never both in one package)."""
    by_package: dict[str, set[str]] = {}
    for name, (target, _help) in COMMANDS.items():
        module = target.split(":")[0]
        package, _, leaf = module.rpartition(".")
        assert leaf == "cli" or leaf.endswith("_cli"), (name, module)
        by_package.setdefault(package, set()).add(leaf)
    for package, leaves in by_package.items():
        assert len(leaves) == 1 or "cli" not in leaves, (package, leaves)


def test_the_architecture_doc_lists_where_each_command_lives():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `art2mus ")]
    for name, (target, _help) in COMMANDS.items():
        module = target.split(":")[0]
        path = module.replace(".", "/") + ".py"
        assert (ROOT / path).is_file(), path
        assert any(f"`art2mus {name}" in row and f"`{path}`" in row for row in rows), (name, path)


def test_the_command_imports_neither_qt_nor_torch(tmp_path):
    """`art2mus catalog list` (and the root command's help) start without Qt or torch."""
    code = (
        "import sys\n"
        "from art2mus.cli import main\n"
        "for args in (['--help'], ['catalog', 'list', '--db', sys.argv[1]]):\n"
        "    try:\n"
        "        main(args, prog_name='art2mus')\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, exc.code\n"
        "heavy = sorted(m for m in ('PyQt6', 'torch') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "art2mus.db")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout[-2000:] + out.stderr[-2000:]
    assert "The catalog is empty" in out.stdout
