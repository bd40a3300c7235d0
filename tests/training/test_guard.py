"""Divergence: non-finite steps are caught before the weights move, rolled back a bounded
number of times with a lower learning rate, and then reported with the term that blew up."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers import oscillator
from typer.testing import CliRunner

from nsvd_cli.cli import app
from nsvd_cli.kinds.schrodinger import build, derive_settings
from nsvd_cli.spec.load import parse_problem
from nsvd_cli.training.guard import Collapsed, Diverged, check_readout, diagnose, step_health
from nsvd_cli.training.loop import EigenObjective, RollbackWarning, init_state, train
from nsvd_cli.training.settings import Settings
from nsvd_cli.training.state import TrainState

CPU = torch.device("cpu")

PROBLEM = oscillator(
    "guard-oscillator",
    solver={"steps": 200, "batch_size": 128, "eval_samples": 4096, "checkpoint_every": 50,
            "hidden": 16, "learning_rate": "LR"},
    reference=False,
)


def _compiled(lr: float = 1e-3):
    problem = parse_problem(PROBLEM.replace("LR", repr(lr)), "guard.yaml")
    settings = derive_settings(problem)
    return build(problem, settings)


class Faulty:
    """The eigen objective with a fault injected whenever the step about to be taken is one
    of ``steps`` (so it recurs after a roll-back replays that step)."""

    def __init__(
        self, inner: EigenObjective, steps: set[int], where: str, once: bool = False
    ) -> None:
        self.inner, self.steps, self.where, self.once = inner, steps, where, once

    def loss(self, state: TrainState) -> torch.Tensor:
        hit = state.step + 1 in self.steps
        if hit and self.once:
            self.steps = self.steps - {state.step + 1}
        if hit and self.where == "parameter":
            with torch.no_grad():
                next(state.network.parameters()).view(-1)[0] = float("inf")
        loss = self.inner.loss(state)
        if hit and self.where == "loss":
            loss = loss * float("nan")
        if hit and self.where == "gradient":
            # A side path into the last parameter whose gradient is NaN (a per-graph hook).
            q = list(state.network.parameters())[-1] * 1.0
            q.register_hook(lambda g: g * float("nan"))
            loss = loss + 0.0 * q.sum()
        return loss

    def after_step(self, state: TrainState) -> None:
        self.inner.after_step(state)

    def values(self, state: TrainState) -> list[float]:
        return self.inner.values(state)

    def checks(self):
        return self.inner.checks()


def test_step_health_sees_loss_gradients_and_moments() -> None:
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.zeros(3)
    ok = torch.tensor(1.0)
    assert bool(step_health(ok, [p], [torch.eye(2)]))
    assert not bool(step_health(torch.tensor(float("nan")), [p], []))
    p.grad = torch.tensor([0.0, float("inf"), 0.0])
    assert not bool(step_health(ok, [p], []))
    p.grad = torch.zeros(3)
    assert not bool(step_health(ok, [p], [torch.tensor([[1.0, float("-inf")]])]))
    # +inf and -inf in one tensor sum to NaN: still caught.
    assert not bool(step_health(ok, [p], [torch.tensor([float("inf"), float("-inf")])]))


def test_diagnosis_names_the_first_non_finite_term_in_order() -> None:
    net = torch.nn.Linear(2, 2)
    out = torch.tensor([[1.0, float("nan")], [2.0, 3.0]])
    op = torch.tensor([float("inf")])
    loss = torch.tensor(float("nan"))
    d = diagnose(7, net, [("points", torch.ones(2, 1)), ("net out", out), ("op", op)], loss, [])
    assert (d.step, d.term) == (7, "net out")
    assert "NaN at 1 of 4 entries" in d.detail and "points 1" in d.detail
    with torch.no_grad():
        net.weight[0, 0] = float("inf")
    d = diagnose(7, net, [("net out", out)], loss, [])
    assert d.term == "network parameter weight" and "inf at 1 of 4" in d.detail


def test_one_fault_rolls_back_once_and_the_run_completes() -> None:
    compiled = _compiled()
    state = init_state(compiled, CPU)
    objective = Faulty(EigenObjective(compiled, CPU), {120}, "loss", once=True)
    with pytest.warns(RollbackWarning, match=r"step 120: loss is not finite.*to step 100"):
        train(compiled, state, CPU, objective=objective)
    assert state.step == 200 and state.rollbacks == 1
    assert state.lr_scale == 0.5
    assert len(state.divergences) == 1 and "step 120: loss" in state.divergences[0]
    assert all(math.isfinite(v) for v in state.current_eigenvalues())
    assert all(torch.isfinite(p).all() for p in state.network.parameters())
    # The roll-back record travels with the state (a resumed run keeps the lower rate).
    again = init_state(compiled, CPU)
    again.load_state_dict(state.state_dict())
    assert (again.rollbacks, again.lr_scale, again.divergences) == (
        1,
        0.5,
        state.divergences,
    )


@pytest.mark.parametrize(
    ("where", "term"),
    [
        ("loss", "loss"),
        ("parameter", "network parameter"),
        ("gradient", "gradient of"),
    ],
)
def test_a_persistent_fault_gives_up_with_a_diagnosis(where: str, term: str) -> None:
    compiled = _compiled()
    settings: Settings = compiled.settings
    settings.optimiser.max_rollbacks = 2
    state = init_state(compiled, CPU)
    objective = Faulty(EigenObjective(compiled, CPU), {70}, where)
    with pytest.warns(RollbackWarning), pytest.raises(Diverged) as info:
        train(compiled, state, CPU, objective=objective)
    exc = info.value
    assert exc.divergence.step == 70 and exc.divergence.term.startswith(term)
    assert exc.rollbacks == 2 and exc.good_step == 50 and exc.lr_scale == 0.25
    assert f"diverged at step 70: {term}" in str(exc)
    assert len(state.divergences) == 3


def test_collapsed_span_is_refused_with_its_rank() -> None:
    values = torch.tensor([0.5, float("nan")])
    gram = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    with pytest.raises(Collapsed, match=r"mode\(s\) \[1\].*span 1 of 2 dimensions"):
        check_readout(values, gram)
    check_readout(torch.tensor([0.5, 1.5]), torch.eye(2))  # finite: nothing to say


def test_a_diverging_run_stops_with_a_clear_error_and_writes_no_results(tmp_path: Path) -> None:
    """A learning rate of 1e6 really overflows: every roll-back fails, and the CLI says which
    term blew up at which step, exit 1, no results.h5."""
    path = tmp_path / "diverge.yaml"
    path.write_text(PROBLEM.replace("LR", "1.0e6"))
    run = tmp_path / "run"
    with pytest.warns(RollbackWarning):
        result = CliRunner().invoke(app, ["solve", str(path), "--out", str(run)])
    assert result.exit_code == 1, result.output
    assert "training diverged at step" in result.output
    assert "is not finite" in result.output and "roll-back(s)" in result.output
    assert str(path) in result.output
    assert not (run / "results.h5").exists()
