"""The problem library (`nsvd problems`) and starter files (`nsvd init`)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from nsvd_cli.cli import app
from nsvd_cli.cli import library as cli_library
from nsvd_cli.kinds.schrodinger import derive_settings
from nsvd_cli.references.closed_form import reference_eigenvalues
from nsvd_cli.spec import library
from nsvd_cli.spec.library import LibraryError, copy_problem, find_problem, library_dir, template
from nsvd_cli.spec.load import load_problem, parse_problem
from nsvd_cli.spec.models import Network, Operator, Problem, Reference, Solver

ROOT = Path(__file__).resolve().parents[2]
PROBLEMS = sorted((ROOT / "problems").glob("*.yaml"))
# Added with the library; each must carry a comment header on its physics and closed form.
DOCUMENTED = [
    "poschl-teller-1d",
    "morse-1d",
    "double-well-1d",
    "box-3d",
    "oscillator-anisotropic-2d",
    "coupled-oscillators-2d",
    "neumann-box-2d",
    "langevin-ou-2d",
    "legendre-1d",
    "robin-interval-1d",
    "sturm-liouville-1d",
    "weighted-string-1d",
    "anisotropic-diffusion-2d",
    "neumann-disk-2d",
    "langevin-ou-10d",
]


def test_the_library_is_the_checkout_folder_here() -> None:
    assert library_dir() == ROOT / "problems"


def test_library_has_at_least_15_described_problems() -> None:
    entries = library.list_problems()
    assert len(entries) == len(PROBLEMS) >= 15
    names = [e.name for e in entries]
    assert names == sorted(p.stem for p in PROBLEMS)  # each file is named after its problem
    for e in entries:
        assert len(e.description) >= 20, e.name
        assert "\n" not in e.description
    kinds = {e.name: (e.dim, e.modes, e.domain, e.reference, e.operator) for e in entries}
    assert kinds["disk-2d"] == (2, 6, "region", "listed", "schrodinger")
    assert kinds["neumann-disk-2d"] == (2, 6, "region", "listed", "schrodinger")
    assert kinds["double-well-1d"] == (1, 4, "whole-space", "none", "schrodinger")
    assert kinds["box-3d"] == (3, 8, "box", "closed-form", "schrodinger")
    assert kinds["gaussian-cdk"][2:] == ("gaussian", "closed-form", "integral")
    assert kinds["convection-diffusion-2d"][4] == "convection-diffusion"
    assert kinds["langevin-ou-2d"] == (2, 6, "whole-space", "closed-form", "langevin")
    assert kinds["legendre-1d"] == (1, 6, "box", "closed-form", "diffusion")
    assert kinds["weighted-string-1d"][4] == kinds["anisotropic-diffusion-2d"][4] == "diffusion"
    assert kinds["robin-interval-1d"] == (1, 6, "box", "listed", "schrodinger")


@pytest.mark.parametrize("path", PROBLEMS, ids=[p.stem for p in PROBLEMS])
def test_every_problem_validates_and_says_how_to_check_it(path: Path) -> None:
    problem = load_problem(path)
    assert problem.name == path.stem
    assert problem.description
    # Without a closed form the file must point to the grid reference instead.
    if problem.reference is None:
        assert "nsvd reference" in path.read_text()


@pytest.mark.parametrize("name", DOCUMENTED)
def test_new_problems_have_a_comment_header(name: str) -> None:
    text = (ROOT / "problems" / f"{name}.yaml").read_text()
    header = text.split("\nname:")[0]
    assert all(line.startswith("#") for line in header.splitlines()), name
    assert len(header.splitlines()) >= 10
    assert "What to expect" in header
    # A closed form cites where it comes from; the double well says it has none.
    assert re.search(r"Closed form|No closed form", header), name


def test_library_dir_prefers_the_packaged_folder(tmp_path: Path) -> None:
    package = tmp_path / "nsvd_cli"
    (package / "problems").mkdir(parents=True)
    (package / "problems" / "a.yaml").write_text("name: a\n")
    (tmp_path / "problems").mkdir()
    (tmp_path / "problems" / "b.yaml").write_text("name: b\n")
    (tmp_path / "pyproject.toml").write_text("")
    assert library_dir(package) == package / "problems"  # an installed wheel
    (package / "problems" / "a.yaml").unlink()
    assert library_dir(package) == tmp_path / "problems"  # a checkout
    # Without the project file next to it, a `problems` folder is someone else's
    # (site-packages/problems of an installed wheel's neighbours).
    (tmp_path / "pyproject.toml").unlink()
    with pytest.raises(LibraryError, match="no problem library found"):
        library_dir(package)


def test_find_problem() -> None:
    assert find_problem("hydrogen-2d") == ROOT / "problems" / "hydrogen-2d.yaml"
    assert find_problem("hydrogen-2d.yaml") == ROOT / "problems" / "hydrogen-2d.yaml"
    with pytest.raises(LibraryError, match="known: .*morse-1d"):
        find_problem("hydrogen-7d")
    for name in ("../pyproject", "..", "", "a/b"):
        with pytest.raises(LibraryError):
            find_problem(name)


def test_problems_command_lists_the_library() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["problems", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [p["name"] for p in listed] == sorted(p.stem for p in PROBLEMS)
    morse = next(p for p in listed if p["name"] == "morse-1d")
    assert morse["file"] == str(ROOT / "problems" / "morse-1d.yaml")
    assert (morse["dim"], morse["modes"], morse["reference"]) == (1, 4, "closed-form")
    result = runner.invoke(app, ["problems"])
    assert result.exit_code == 0, result.output
    assert f"{len(PROBLEMS)} problems in" in result.output
    for path in PROBLEMS:
        assert path.stem in result.output
    # A description's brackets are text, not Rich markup.
    assert "[0, 1] x [0, 1] x [0, 2]" in " ".join(result.output.split())


def test_wide_terminals_get_a_table() -> None:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(cli_library._table(library.list_problems(), ROOT / "problems"))
    lines = console.export_text().splitlines()
    header = next(line for line in lines if "description" in line)
    assert header.split() == ["name", "d", "modes", "domain", "reference", "description"]
    (row,) = [line for line in lines if line.split()[:1] == ["box-3d"]]
    assert row.split()[1:5] == ["3", "8", "box", "closed"]
    assert "[0, 1] x [0, 1] x [0, 2]" in row


def test_template_shows_every_key() -> None:
    text = template("demo")
    shown = set(re.findall(r"^\s*#?\s*([a-z_]+):", text, flags=re.M))
    for model in (Problem, Operator, Solver, Network, Reference):
        assert set(model.model_fields) <= shown, (model.__name__, set(model.model_fields) - shown)
    # The domain forms are written inline, as in a file.
    for form in ("domain: whole-space", "{box: {", "{region: ", "bounds: {", "{gaussian: {scale:"):
        assert form in text, form


def _commented_block(text: str, key: str) -> str:
    """A commented-out top-level block (``# key:`` and its ``#   ...`` lines), uncommented."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"# {key}:"))
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("#   "):
            break
        block.append(line)
    return "\n".join(line[2:] for line in block) + "\n"


def test_template_defaults_are_the_derived_defaults() -> None:
    """The values shown for solver and network keys are what an absent key gives."""
    text = template("demo")
    problem = parse_problem(text)
    settings = derive_settings(problem)
    solver = yaml.safe_load(_commented_block(text, "solver"))["solver"]
    network = yaml.safe_load(_commented_block(text, "network"))["network"]
    # examples: chosen from the problem, or (tol, refine_steps) a value to ask for instead
    # of a default
    derived = {"shift", "scale", "sampling_scales", "tol", "refine_steps"}
    assert set(solver) == set(Solver.model_fields)
    for key, value in solver.items():
        if key not in derived:
            assert settings.get_flat(key) == value, key
    assert set(network) == set(Network.model_fields)
    assert network["kind"] == problem.network.kind
    for key in ("hidden", "depth", "activation", "radial_feature", "fourier_features"):
        assert settings.get_flat(key) == network[key], key
    assert (settings.network.fourier_scale, settings.network.envelope) == (
        network["fourier_scale"],
        network["envelope"],
    )
    # Uncommented, the blocks are valid too (indentation and values).
    parse_problem(text + _commented_block(text, "solver") + _commented_block(text, "network"))


def test_template_has_a_correct_closed_form() -> None:
    problem = parse_problem(template("demo"))
    values = reference_eigenvalues(problem)
    assert values is not None
    # Frequencies 1 and 2: a + 2 b + 3/2.
    assert values.tolist() == [1.5, 2.5, 3.5, 3.5]


def test_init_writes_a_file_that_checks_and_solves(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "my-well.yaml"
    result = runner.invoke(app, ["init", "my-well", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert f"wrote {target}" in result.output
    assert load_problem(target).name == "my-well"
    assert runner.invoke(app, ["check", str(target)]).exit_code == 0
    run = tmp_path / "run"
    result = runner.invoke(app, ["solve", str(target), "--steps", "20", "--out", str(run)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["eval", str(run), "--json", "--samples", "4096"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reference"] == [1.5, 2.5, 3.5, 3.5]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my-well.yaml", "run"]


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "x.yaml"
    target.write_text("mine\n")
    result = runner.invoke(app, ["init", "x", "-o", str(target)])
    assert result.exit_code == 2
    assert "exists" in result.output and "--force" in result.output
    assert target.read_text() == "mine\n"
    result = runner.invoke(app, ["init", "x", "-o", str(target), "--force"])
    assert result.exit_code == 0, result.output
    assert load_problem(target).name == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["x.yaml"]  # no temporary left


def test_init_default_file_and_folder_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["init", "a.b_c-1"]).exit_code == 0
    assert load_problem(tmp_path / "a.b_c-1.yaml").name == "a.b_c-1"
    (tmp_path / "sub").mkdir()
    assert runner.invoke(app, ["init", "q", "-o", "sub"]).exit_code == 0
    assert load_problem(tmp_path / "sub" / "q.yaml").name == "q"


@pytest.mark.parametrize("name", ["bad name", "a/b", "ü", "..", "x:y", ""])
def test_init_rejects_invalid_names(tmp_path: Path, name: str) -> None:
    result = CliRunner().invoke(app, ["init", name, "-o", str(tmp_path / "f.yaml")])
    assert result.exit_code == 2, (name, result.output)
    assert "invalid problem name" in result.output
    assert not (tmp_path / "f.yaml").exists()


def test_odd_but_valid_names_stay_strings() -> None:
    # YAML would read these unquoted as a number, a boolean or null.
    for name in ("123", "1e3", "true", "null", "-", "-1", "0x10"):
        assert parse_problem(template(name)).name == name
        assert parse_problem(copy_problem(ROOT / "problems" / "volterra.yaml", name)).name == name


def test_init_from_a_library_problem(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "h.yaml"
    result = runner.invoke(app, ["init", "h", "--from", "hydrogen-2d", "-o", str(target)])
    assert result.exit_code == 0, result.output
    copied = load_problem(target)
    original = load_problem(ROOT / "problems" / "hydrogen-2d.yaml")
    assert copied.name == "h"
    assert copied.model_dump(exclude={"name"}, warnings=False) == original.model_dump(
        exclude={"name"}, warnings=False
    )
    # Everything but the name line is kept, comments included.
    body = target.read_text().splitlines()
    source = (ROOT / "problems" / "hydrogen-2d.yaml").read_text().splitlines()
    assert [x for x in body if not x.startswith(("#", "name:"))] == [
        x for x in source if not x.startswith(("#", "name:"))
    ]
    assert "# n is the radial quantum number" in target.read_text()
    result = runner.invoke(app, ["init", "h", "--from", "hydrogen-9d", "-o", str(target)])
    assert result.exit_code == 2 and "no problem 'hydrogen-9d'" in result.output


@pytest.mark.parametrize("path", PROBLEMS, ids=[p.stem for p in PROBLEMS])
def test_every_library_problem_can_be_copied(path: Path) -> None:
    text = copy_problem(path, "copy")
    problem = parse_problem(text)
    assert problem.name == "copy"
    assert problem.model_dump(exclude={"name"}, warnings=False) == load_problem(path).model_dump(
        exclude={"name"}, warnings=False
    )
    # A generated file's "edit the generator" line does not apply to a copy.
    assert "Generated by" not in text


def test_docs_list_every_problem() -> None:
    docs = (ROOT / "docs" / "problems.md").read_text()
    rows = dict(
        (cells[0], cells[1:])
        for line in docs.splitlines()
        if line.startswith("| ") and (cells := [c.strip() for c in line.strip("|").split("|")])
    )
    for entry in library.list_problems():
        assert f"**{entry.name}**" in docs, entry.name  # its own paragraph
        d, modes, _, reference = rows[entry.name]
        assert (int(d), int(modes)) == (entry.dim, entry.modes), entry.name
        assert reference.split(" (")[0] == cli_library.REFERENCE_LABELS[entry.reference]
