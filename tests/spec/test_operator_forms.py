"""The version-2 operator and wall keys: every form the contract names parses and is
checked at its key; what no kind trains yet is refused there, saying what works."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import Result

from nsvd_cli.spec import ProblemError, parse_problem
from nsvd_cli.spec.schema import problem_json_schema

HEAD = "name: t\ncoordinates: [x, y]\nmodes: 2\n"
BOX = "domain: {box: {x: [0, 1], y: [0, 2]}, boundary: BOUNDARY}\n"


def _issues(text: str) -> list[str]:
    with pytest.raises(ProblemError) as caught:
        parse_problem(HEAD + text)
    return [f"{e.key}: {e.message}" for e in caught.value.errors]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('operator: {diffusion: "1/2", kinetic: 1}\n', "operator.diffusion: give diffusion or"),
        ('operator: {diffusion: "-1"}\n', "operator.diffusion: must be > 0"),
        ('operator: {diffusion: "1 + x**2", drift: ["1", "0"]}\n',
         "operator.diffusion: a varying or matrix diffusion with a drift is not"),
        ('operator: {diffusion: [["1", "x*y"], ["x*y/2", "1"]]}\n', "must be symmetric"),
        ('operator: {diffusion: [["1", "x*y"], ["x*y", "1"]]}\n' + BOX.replace(
            "BOUNDARY", "{robin: 1}"), "Robin walls with a matrix diffusion are not"),
        ('operator: {diffusion: [["1"]]}\n', "operator.diffusion: a matrix diffusion is 2 x 2"),
        ('operator: {diffusion: [["1", [0, 0]], ["1/2", "1"]]}\n',
         "operator.diffusion: expected a number or an expression string"),
        ("operator: {diffusion: {a: 1}}\n", "expected an expression or a d x d matrix"),
        ('operator: {weight: "exp(-x**2)", drift: ["1", "0"]}\n',
         "operator.weight: a weight with a drift is not"),
        ('operator: {weight: "-2"}\n', "operator.weight: must be > 0"),
        ('operator: {weight: "q"}\n', "operator.weight: unknown name 'q'"),
        ('operator: {langevin: {potential: "x**2"}}\n' + BOX.replace("BOUNDARY", "{x: neumann}"),
         "domain: a Langevin generator on a region, or with walls that differ"),
        ('operator: {langevin: {potential: "x**2", temperature: -1}}\n', "must be > 0"),
        ('operator: {langevin: {potential: "x**2"}, potential: 1}\n', "langevin replaces"),
        (
            'operator: {drift: ["1", "0"]}\n' + BOX.replace("BOUNDARY", "neumann"),
            "neumann or Robin walls with a drift are not",
        ),
        (
            'coordinates: [x, y, z]\ndomain: {region: "1 - x**2 - y**2 - z**2", '
            "bounds: {x: [-1, 1], y: [-1, 1], z: [-1, 1]}, boundary: {robin: 2}}\n",
            "domain.boundary: Robin walls on a region in 3 dimensions are not",
        ),
        (BOX.replace("BOUNDARY", "{robin: q}"), "domain.boundary.robin: unknown name 'q'"),
        (BOX.replace("BOUNDARY", "sticky"), "expected dirichlet, neumann, periodic or"),
        (BOX.replace("BOUNDARY", "{z: neumann}"), "domain.boundary.z: not a coordinate"),
        (BOX.replace("BOUNDARY", "{x: periodic}"), "domain.boundary.x: periodic walls are not"),
        (BOX.replace("BOUNDARY", "{y: [periodic, dirichlet]}"), "periodic joins both faces"),
        (BOX.replace("BOUNDARY", "{x: [dirichlet]}"), "[low face, high face]"),
        (
            'domain: {region: "1 - x**2 - y**2", bounds: {x: [-1, 1], y: [-1, 1]}, '
            "boundary: periodic}\n",
            "a region's edge is dirichlet, neumann or {robin: alpha}",
        ),
    ],
)
def test_each_form_is_checked_at_its_key(text: str, expected: str) -> None:
    issues = _issues(text)
    assert any(expected in issue for issue in issues), issues


def test_an_integral_operator_refuses_the_differential_keys() -> None:
    text = (
        'operator: {kernel: "x*u + y*v", input_coordinates: [u, v], weight: 2}\n'
        + BOX.replace("BOUNDARY", "dirichlet")
    )
    issues = _issues(text)
    assert any(i.startswith("operator.weight: an integral operator") for i in issues), issues
    assert any(i.startswith("domain.boundary: an integral operator's domain") for i in issues)


@pytest.mark.parametrize(
    "boundary",
    [
        "dirichlet",
        "{x: dirichlet, y: [dirichlet, dirichlet]}",
        "{robin: 2}",
        "{x: [dirichlet, {robin: 1}], y: neumann}",
    ],
)
def test_what_works_today_parses(boundary: str) -> None:
    problem = parse_problem(
        HEAD + 'operator: {diffusion: "3/4", weight: "1"}\n' + BOX.replace("BOUNDARY", boundary)
    )
    assert problem.kinetic_value() == 0.75


def test_the_schema_describes_the_new_keys() -> None:
    defs = problem_json_schema()["$defs"]
    operator = defs["Operator"]["properties"]
    assert {"diffusion", "weight", "langevin"} <= set(operator)
    assert "boundary" in defs["BoxDomain"]["properties"]
    assert "boundary" in defs["RegionDomain"]["properties"]


def test_diffusion_is_kinetic_and_dirichlet_the_default_bit_for_bit(
    write_problem: Callable[..., Path], nsvd: Callable[..., Result], tmp_path: Path
) -> None:
    """The version-2 spelling of a problem trains exactly the problem of version 1."""
    solver = "solver: {steps: 40, batch_size: 128, hidden: 16}\n"
    old = "name: a\ncoordinates: [x]\nmodes: 2\noperator: {kinetic: 0.7, potential: x}\n"
    new = (
        "name: a\ncoordinates: [x]\nmodes: 2\noperator: {diffusion: 0.7, potential: x}\n"
        "domain: {box: {x: [0, 1]}, boundary: {x: [dirichlet, dirichlet]}}\n"
    )
    values = []
    for i, text in enumerate((old + "domain: {box: {x: [0, 1]}}\n", new)):
        run = tmp_path / f"run{i}"
        result = nsvd("solve", write_problem(text + solver, f"p{i}"), "--out", run)
        assert result.exit_code == 0, result.output
        with h5py.File(run / "results.h5") as f:
            values.append(np.asarray(f["eigenvalues"]))
    assert np.array_equal(values[0], values[1])


def test_a_box_key_that_is_not_a_name_is_an_error_at_its_line_not_a_crash() -> None:
    """Found by the fuzz test: a null box key beside per-face walls raised a TypeError."""
    text = (
        "name: r\ncoordinates: [x]\noperator: {kinetic: 1/2, potential: 0}\n"
        "domain:\n  box:\n    null: [0, 1]\n  boundary:\n    x: [dirichlet, {robin: 1}]\n"
        "modes: 2\n"
    )
    with pytest.raises(ProblemError) as err:
        parse_problem(text, "null.yaml")
    assert "null.yaml:6: domain.box.None: keys must be names" in str(err.value), str(err.value)
