"""Data-parallel training across processes (``torchrun``) with the exact full-batch gradient.

Each rank samples its own points. The NeuralSVD losses are not means of per-point losses:
they multiply batch moments (``<f_l, f_m>^2`` from two half batches), so averaging per-rank
losses, as plain data parallelism does, would give a biased gradient. Instead every rank
forms the *global* loss:

* the mode values are all-gathered (differentiably), arranged so the global first half
  batch is every rank's first half (the losses split ``f`` in halves);
* the operator rows (L x L batch means per half) are averaged (differentiably).

Every rank then holds the same loss ``l``. Its gradient with respect to rank r's own
``f_r`` comes back from the gather's backward summed over the W identical copies
(W dl/df_r); its gradient through the averaged rows comes back as dl/dR (the 1/W of the mean
and the sum of W copies cancel). Averaging the parameter gradients over ranks then gives

    (1/W) sum_r [W dl/df_r df_r/dtheta + dl/dR dR_r/dtheta]
        = sum_r dl/df_r df_r/dtheta + dl/dR dR/dtheta,

the gradient of the single-process loss on the concatenated batch (tested to 1e-10).
Gradients are averaged with one ``all_reduce`` of a flat buffer that also carries each
rank's stop request, so all ranks stop at the same step.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
import torch.distributed as dist

from nsvd_cli.objectives.formulations import StepTerms, halves


class _GatherRows(torch.autograd.Function):
    """Concatenate every rank's (n, ...) tensor along dim 0. Backward: the gradient of the
    whole concatenation, summed over ranks, sliced to this rank's rows (what a reduce-scatter
    would do; all_reduce works on every backend)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, rank: int, world: int) -> torch.Tensor:
        ctx.rank, ctx.n = rank, x.shape[0]
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n], None, None


class _SumRanks(torch.autograd.Function):
    """The sum over ranks; its backward is the sum over ranks of the gradients."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.contiguous().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = grad.contiguous().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out


@dataclass(frozen=True)
class Context:
    """This process's place in the job: ``world == 1`` is an ordinary single process."""

    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def globalize(self, terms: StepTerms) -> StepTerms:
        """The step's terms as one process would have them on the concatenated batch."""
        if not self.active:
            return terms
        # One gather and one reduction per step: this rank's halves travel together, and
        # the gathered (rank, half) blocks are reordered half-major.
        f1, f2 = halves(terms.f)
        n, modes = f1.shape
        mine = torch.stack([f1, f2])  # (2, n, L)
        every = _GatherRows.apply(mine, self.rank, self.world)  # (W * 2, n, L), rank-major
        f = every.reshape(self.world, 2, n, modes).transpose(0, 1).reshape(-1, modes)
        rows = self.mean(torch.stack(terms.rows))
        residuals = None if terms.residuals is None else self.mean(terms.residuals)
        return StepTerms(f, (rows[0], rows[1]), residuals)

    def gather_rows(self, t: torch.Tensor) -> torch.Tensor:
        """Every rank's rows of ``t`` concatenated in rank order, differentiable."""
        return _GatherRows.apply(t, self.rank, self.world) if self.active else t

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """Every rank's rows of ``t`` concatenated in rank order (no gradient)."""
        if not self.active:
            return t
        parts = [torch.empty_like(t) for _ in range(self.world)]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts)

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """The mean over ranks, differentiable (see the module docstring for the gradient)."""
        if not self.active:
            return t
        return _SumRanks.apply(t) / self.world

    def average_gradients(self, parameters: list[torch.nn.Parameter], stop: bool) -> bool:
        """Average the parameters' gradients over ranks in place; True if any rank asked to
        stop. One collective per step."""
        if not self.active:
            return stop
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
        flat = torch.cat([g.reshape(-1) for g in grads])
        flag = flat.new_tensor([1.0 if stop else 0.0])
        buffer = torch.cat([flat, flag])
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
        offset = 0
        for p, g in zip(parameters, grads):
            n = g.numel()
            p.grad = (buffer[offset : offset + n] / self.world).view_as(p).clone()
            offset += n
        return bool(buffer[-1] > 0)

    def gather_objects(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (on every rank)."""
        if not self.active:
            return [value]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def broadcast_object(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if not self.active:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        """Leave the process group once every rank is done: a rank that tears down its gloo
        threads while another still talks to it aborts at exit."""
        if self.active and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


LOCAL = Context()

# Each rank samples its own stream: seed + this * rank.
RANK_SEED_STRIDE = 7_919_000


def rank_seed(seed: int, context: Context) -> int:
    return seed + RANK_SEED_STRIDE * context.rank


def rank_batch(batch_size: int, context: Context) -> int:
    """Each rank's share of the job's batch; both halves of every share must be equal, so
    the batch must divide into 2 * world points."""
    if not context.active:
        return batch_size
    if batch_size % (2 * context.world):
        raise ValueError(
            f"batch_size {batch_size} does not split into {context.world} processes x 2 "
            f"equal half batches; use a multiple of {2 * context.world}"
        )
    return batch_size // context.world


_joined = False


def from_environment(device: torch.device) -> Context:
    """The context torchrun describes in the environment (RANK, WORLD_SIZE, MASTER_ADDR...);
    a single process without it. NCCL for CUDA, gloo for CPU."""
    global _joined
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return LOCAL
    if device.type == "cuda":
        # NCCL's object collectives (checkpoint sampler states) use the current device.
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    _joined = True
    return Context(rank=dist.get_rank(), world=dist.get_world_size())


def joined() -> bool:
    """Whether this process took part in a distributed job."""
    return _joined


def leave(code: int) -> NoReturn:
    """End a distributed rank without the interpreter's teardown: gloo's worker threads can
    still hold tensors then, and their destruction aborts the process now and then
    ("terminate called without an active exception"), which torchrun reports as a failed
    job although every file was written. Output is flushed first."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def local_device(device: torch.device) -> torch.device:
    """With several processes on one machine, rank i uses cuda:LOCAL_RANK."""
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device
