"""`nsvd schema`: the JSON Schema of problem files, generated from the pydantic models; every
shipped problem validates against it, typos and wrong types do not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from nsvd_cli.cli import app
from nsvd_cli.spec.models import Operator, Problem, Reference, Solver
from nsvd_cli.spec.schema import problem_json_schema

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "problems").glob("*.yaml"))
RUNNER = CliRunner()

# The keys of docs/problem-format.md (the contract): the schema must offer every one.
CONTRACT = {
    (): {"name", "description", "coordinates", "parameters", "operator", "domain", "modes"}
    | {"solver", "reference"},
    ("Operator",): {"kinetic", "potential"},
    ("Solver",): {"method", "steps", "batch_size", "learning_rate", "seed"},
    ("Reference",): {"eigenvalue", "quantum_numbers", "where", "eigenfunction", "eigenvalues"},
}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    result = RUNNER.invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _objects(node: Any) -> list[dict[str, Any]]:
    """Every sub-schema with properties (the mappings of the file)."""
    found = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append(node)
        for value in node.values():
            found += _objects(value)
    elif isinstance(node, list):
        for value in node:
            found += _objects(value)
    return found


def test_schema_has_the_contract_keys_and_forbids_others(schema: dict[str, Any]) -> None:
    assert schema["$schema"].endswith("/2020-12/schema")
    assert set(schema["required"]) == {"name", "coordinates", "modes"}
    defs = schema["$defs"]
    for where, keys in CONTRACT.items():
        node = defs[where[0]] if where else schema
        assert keys <= set(node["properties"]), where
    # The models and the schema list the same keys: nothing added or lost on the way.
    for model, node in ((Problem, schema), (Operator, defs["Operator"]), (Solver, defs["Solver"])):
        assert set(node["properties"]) == set(model.model_fields), model.__name__
    assert set(defs["Reference"]["properties"]) == set(Reference.model_fields)
    # Unknown keys are errors everywhere a key is named by the format.
    objects = _objects(schema)
    assert len(objects) >= 8
    for node in objects:
        assert node.get("additionalProperties") is False, node.get("title")


def test_schema_types_bounds_and_descriptions(schema: dict[str, Any]) -> None:
    props, defs = schema["properties"], schema["$defs"]
    assert props["modes"] == {**props["modes"], "type": "integer", "minimum": 1, "maximum": 512}
    assert props["name"]["pattern"] == "^[A-Za-z0-9_.-]+$"
    batch = defs["Solver"]["properties"]["batch_size"]["anyOf"][0]
    assert batch == {"type": "integer", "minimum": 4, "multipleOf": 2}
    assert defs["Solver"]["properties"]["learning_rate"]["anyOf"][0]["exclusiveMinimum"] == 0
    assert defs["Operator"]["properties"]["potential"]["type"] == ["number", "string"]
    box = defs["BoxDomain"]["properties"]["box"]["additionalProperties"]
    assert box["type"] == "array" and box["minItems"] == box["maxItems"] == 2
    # The models' docstrings, and a description for each contract key.
    assert "Laplacian" in defs["Operator"]["description"]
    for key in CONTRACT[()]:
        assert props[key].get("description"), key
    # No accept-anything schema left where a plain validator hid the type.
    assert "{}" not in json.dumps(schema).replace(" ", "")


def test_schema_output_file(tmp_path: Path, schema: dict[str, Any]) -> None:
    target = tmp_path / "sub" / "problem.schema.json"
    result = RUNNER.invoke(app, ["schema", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text()) == schema == problem_json_schema()
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary left


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_problems_validate(validator: Any, path: Path) -> None:
    errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


MINIMAL = {"name": "p", "coordinates": ["x"], "operator": {"potential": "x**2"}, "modes": 2}


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"modez": 2}, "modez"),  # a typo at the top
        ({"solver": {"stepz": 10}}, "stepz"),  # and nested
        ({"domain": {"box": {"x": [0, 1]}, "bounds": {"x": [0, 1]}}}, "domain"),
        ({"domain": {"box": {"x": [0, 1, 2]}}}, "domain"),
        ({"modes": "many"}, "many"),
        ({"modes": 0}, "0"),
        ({"solver": {"batch_size": 7}}, "7"),
        ({"solver": {"method": "adam"}}, "adam"),
        ({"name": "has space"}, "has space"),
    ],
)
def test_wrong_files_do_not_validate(validator: Any, change: dict[str, Any], fragment: str) -> None:
    assert list(validator.iter_errors(MINIMAL)) == []
    errors = list(validator.iter_errors({**MINIMAL, **change}))
    assert errors and any(fragment in str(e.message) or fragment in str(e.path) for e in errors)
