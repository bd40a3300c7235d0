"""The package's shape: imports flow one way, layer by layer (docs/architecture.md).

Read from the source with ``ast``: a module that imports a layer above its own fails here
with the file, the line and both layers named.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nsvd_cli"

# What each layer may import of nsvd (besides itself). Lower layers never see higher ones.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "files": {"errors"},
    "expr": {"errors"},
    "numerics": {"errors"},
    "spec": {"expr", "errors"},
    "objectives": {"numerics", "errors"},
    "references": {"spec", "expr", "numerics", "files", "errors"},
    "training": {"objectives", "numerics", "errors"},
    "kinds": {"training", "objectives", "numerics", "references", "spec", "expr", "files",
              "errors"},
    "runs": {"kinds", "training", "objectives", "numerics", "references", "spec", "expr",
             "files", "errors"},
    "viz": {"runs", "kinds", "training", "objectives", "numerics", "references", "spec",
            "expr", "files", "errors"},
    "cli": {"viz", "runs", "kinds", "training", "objectives", "numerics", "references", "spec",
            "expr", "files", "errors"},
}
# The package root holds only the entry points, the public face and the errors.
ROOT_MODULES = {"__init__", "__main__", "errors"}
FRONT_END_LIBRARIES = {"typer", "rich"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _layer(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _nsvd_imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported layer) for every import of nsvd in a module, relative or absolute."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package_parts = path.relative_to(PACKAGE).parts[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package_parts[: len(package_parts) - node.level + 1])
                target = [*base, *(node.module.split(".") if node.module else [])]
                names = [".".join(["nsvd_cli", *target])]
                if not target:  # from . import x: x is the layer
                    names = [f"nsvd_cli.{alias.name}" for alias in node.names]
            elif node.module:
                names = [node.module]
                if node.module == "nsvd_cli":
                    names = [f"nsvd_cli.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "nsvd_cli" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


def _third_party(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_every_module_belongs_to_a_layer() -> None:
    for path in _modules():
        layer = _layer(path)
        if path.parent == PACKAGE:
            assert layer in ROOT_MODULES, f"{path.name}: a module at the package root"
        else:
            assert layer in ALLOWED, f"{path}: folder {layer!r} is not a known layer"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    layer = _layer(path)
    if layer in ("__init__", "__main__"):
        return  # the entry points and the lazy public face may name any layer
    allowed = ALLOWED[layer] | {layer, "__version__"}
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: layer {layer!r} imports {target!r}"
        for line, target in _nsvd_imports(path)
        if target not in allowed
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_cli_imports_typer_or_rich(path: Path) -> None:
    if _layer(path) == "cli":
        return
    assert not (_third_party(path) & FRONT_END_LIBRARIES), f"{path}: typer/rich outside cli/"


def test_files_layer_knows_nothing_of_nsvd_but_errors() -> None:
    for path in (PACKAGE / "files").rglob("*.py"):
        targets = {target for _, target in _nsvd_imports(path)}
        assert targets <= {"files", "errors"}, f"{path}: imports {sorted(targets)}"


def test_modules_stay_small() -> None:
    long = [
        f"{path.relative_to(PACKAGE)}: {n} lines"
        for path in _modules()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not long, "\n".join(long)


TESTS = Path(__file__).resolve().parent
WHOLE_PROJECT_TESTS = {"test_architecture.py", "test_docs.py"}


def test_tests_are_laid_out_like_the_package() -> None:
    """A layer's tests live in tests/LAYER/; only whole-project checks sit at the top."""
    layers = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and p.name[0] not in "._"}
    assert folders <= layers, f"test folders that are no layer: {sorted(folders - layers)}"
    loose = {p.name for p in TESTS.glob("test_*.py")} - WHOLE_PROJECT_TESTS
    assert not loose, f"put these in the folder of the layer they test: {sorted(loose)}"
    assert all(any((TESTS / f).glob("test_*.py")) for f in folders)


def test_functions_stay_short() -> None:
    """Signature and docstring included; a command's Typer options count too."""
    long = [
        f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}: {length} lines"
        for path in _modules()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (length := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES
    ]
    assert not long, "\n".join(long)


def test_the_checker_sees_a_wrong_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker itself: a numerics module importing the spec layer is reported."""
    fake = tmp_path / "nsvd_cli"
    (fake / "numerics").mkdir(parents=True)
    module = fake / "numerics" / "bad.py"
    module.write_text("from ..spec import load_problem\nfrom nsvd_cli.cli import app\n")
    monkeypatch.setitem(globals(), "PACKAGE", fake)
    assert [target for _, target in _nsvd_imports(module)] == ["spec", "cli"]
    with pytest.raises(AssertionError, match="layer 'numerics' imports 'spec'"):
        test_imports_point_down(module)


def test_spin_decay_default_agrees_across_layers() -> None:
    from nsvd_cli.objectives.methods.base import DEFAULT_MOVING_AVERAGE
    from nsvd_cli.spec.models import SPIN_DECAY_DEFAULT

    assert SPIN_DECAY_DEFAULT == DEFAULT_MOVING_AVERAGE


def test_the_public_face_names_what_it_offers() -> None:
    import nsvd_cli

    assert set(nsvd_cli.__all__) == {"__version__", *nsvd_cli._FACE}
    for name in nsvd_cli._FACE:
        assert getattr(nsvd_cli, name) is not None
    with pytest.raises(AttributeError):
        nsvd_cli.not_a_name  # noqa: B018
