"""One minibatch per seed: the dense models' training step as products over rows shared by a seed's runs.

The runs of one seed see the same permutation positions at every step, so their minibatches are the
same base-set rows except where a position maps to a run's replaced example (`neighbour_rows`): at
most one row per run, which is x_0 there instead. A step therefore gathers each seed's B rows once,
appends x_0 as row B, and computes its runs' first dense layer (forward, and the weight gradient) as
one matrix product per block of `width` runs of that seed (`block_runs`):

- forward: (B + 1, d + 1) @ (d + 1, width * o), the bias folded in as a column of 1s; a run takes
  row j of its columns, except at its replaced position j*, where it takes row B (x_0's output);
- weight and bias gradient: (d + 1, B + 1) @ (B + 1, width * o), with the run's output gradient
  zeroed at row j* and placed at row B, so the sum covers exactly the run's own B rows.

Between the two products, the step runs as tensor operations here (`shared_forward`,
`shared_weight_grad`, `Model.shared_grads`: a GPU's path) or, on the CPU, as one compiled loop
(`sgd_privacy.train.fused`).

The determinism contract (a run's bits do not depend on the runs that share its chunk, the chunk size
or the thread count) holds because every product has the same shape whatever the grouping (a block is
always `block_runs(o)` runs wide, padded with copies of a run of the seed), a run's columns of it depend only on
its seed's rows and its own parameters, and the products run on single-threaded kernels (one
multi-threaded MKL product splits a small matrix by thread and changes its last bits). This is
checked bit for bit in tests/test_trainer.py over groupings (a seed's runs split across chunks, in
other blocks' positions, seeds mixed) and thread counts, and for the kernels themselves in
tests/test_shared_products.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .convstack import single_threaded_kernels


def block_runs(outputs: int) -> int:
    """Runs per block for a first layer with `outputs` units: blocks at least 32 columns wide (at most
    16 runs), never under 16, so that no product falls to the narrow-matrix kernels, which MKL picks for
    fewer than 12 columns. A function of the architecture only: never of the grouping."""
    return min(16, max(1, -(-32 // outputs)))


@dataclass(frozen=True)
class SeedBlocks:
    """A chunk's runs laid out in blocks of `width` runs of one seed (padded columns: `source`)."""

    slot: torch.Tensor  # (M,) int64: run m's column in the padded layout of n_blocks * width columns
    source: torch.Tensor  # (n_blocks * width,) int64: the run in each padded column (repeats pad a block)
    block_seed: torch.Tensor  # (n_blocks,) int64: each block's seed, as an index into the unique seeds
    n_blocks: int
    width: int

    @staticmethod
    def build(seed_slot: np.ndarray, width: int, device: torch.device) -> SeedBlocks:
        """Blocks of `width` runs of each unique seed (`seed_slot`: run -> unique-seed index), in run order."""
        slot = np.empty(len(seed_slot), dtype=np.int64)
        source: list[int] = []
        block_seed: list[int] = []
        for u in np.unique(seed_slot):
            members = np.flatnonzero(seed_slot == u)
            for start in range(0, len(members), width):
                part = members[start : start + width]
                slot[part] = len(source) + np.arange(len(part))
                source += [*part.tolist(), *[int(part[0])] * (width - len(part))]
                block_seed.append(int(u))

        def t(a: np.ndarray | list[int]) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a, dtype=np.int64), device=device)

        return SeedBlocks(t(slot), t(source), t(block_seed), len(block_seed), width)

    def per_run(self, per_seed: torch.Tensor) -> torch.Tensor:
        """Each run's copy of its seed's tensor (unique seeds, B, u) in the blocks' layout (n_blocks, B,
        width, u), contiguous: every run of a block gets its seed's values (e.g. the dropout masks)."""
        n_seeds, rows = per_seed.shape[:2]
        spread = per_seed.unsqueeze(2).expand(-1, -1, self.width, -1).reshape(n_seeds, -1)
        return spread.index_select(0, self.block_seed).reshape(self.n_blocks, rows, self.width, -1)


def fixed_bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched product on the CPU with single-threaded kernels (each matrix's bits then depend only on
    its own operands and shape, not on the batch count or thread count); torch.bmm elsewhere."""
    if a.device.type != "cpu":
        return torch.bmm(a, b)
    with single_threaded_kernels():
        return torch.bmm(a, b)


def with_ones(x: torch.Tensor) -> torch.Tensor:
    """Rows (N, ...) flattened, with a trailing 1: the first layer's bias becomes its weight's last row."""
    return torch.cat([x.reshape(len(x), -1), torch.ones(len(x), 1, dtype=x.dtype, device=x.device)], dim=1)


def to_slots(params: list[torch.Tensor], blocks: SeedBlocks) -> list[torch.Tensor]:
    """Per-run parameters (M, ...) in the blocks' layout: the first dense layer's weight (M, d, o) and
    bias (M, o) as the products' right operands (n_blocks, d + 1, width * o) (bias last; column c * o + k
    is unit k of the block's run c), every other tensor (M, ...) as (n_blocks, width, ...); padding
    columns copy a run of the block."""
    w, b, rest = params[0], params[1], params[2:]
    nb, width = blocks.n_blocks, blocks.width
    d, o = w.shape[1:]
    wb = torch.cat([w, b.unsqueeze(1)], dim=1).index_select(0, blocks.source).reshape(nb, width, d + 1, o)
    out = [wb.permute(0, 2, 1, 3).reshape(nb, d + 1, width * o)]
    return out + [p.index_select(0, blocks.source).reshape(nb, width, *p.shape[1:]) for p in rest]


def from_slots(slots: list[torch.Tensor], blocks: SeedBlocks, o: int) -> list[torch.Tensor]:
    """Inverse of `to_slots`: the runs' parameters (M, ...) (`o`: output units of the first layer)."""
    wb, rest = slots[0], slots[1:]
    d1 = wb.shape[1]
    per_run = wb.reshape(blocks.n_blocks, d1, blocks.width, o).permute(0, 2, 1, 3).reshape(-1, d1, o)
    per_run = per_run.index_select(0, blocks.slot)
    out = [per_run[:, :-1].contiguous(), per_run[:, -1].contiguous()]
    return out + [p.reshape(-1, *p.shape[2:]).index_select(0, blocks.slot) for p in rest]


def batch_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of (n, B, ...) over the batch axis B as an innermost contiguous reduction: each element's
    order of summation depends on B only (the seed blocks' layout, and the per-model (M, B, o) one)."""
    return t.movedim(1, -1).contiguous().sum(dim=-1)


@dataclass(frozen=True)
class SharedBatch:
    """One step's minibatch in the seed blocks' layout: the blocks' shared rows xs (n_blocks, B + 1,
    d + 1) (trailing 1s; row B is x_0, a run's row where `hit` (n_blocks, B, width)), labels y
    (n_blocks, B, width), the seeds' dropout multipliers keep (unique seeds, B, units) or None, and
    the blocks' layout."""

    xs: torch.Tensor
    hit: torch.Tensor
    y: torch.Tensor
    keep: torch.Tensor | None
    blocks: SeedBlocks

    def run_keep(self) -> torch.Tensor | None:
        """Each run's dropout multipliers (n_blocks, B, width, units), or None (`SeedBlocks.per_run`)."""
        return None if self.keep is None else self.blocks.per_run(self.keep)


def shared_forward(xs: torch.Tensor, wb: torch.Tensor, hit: torch.Tensor) -> torch.Tensor:
    """Each run's affine map of its own B rows (n_blocks, B, width, o): the blocks' shared rows xs
    (n_blocks, B + 1, d + 1) (trailing 1s; row B is x_0) times the blocks' weights and biases wb
    (n_blocks, d + 1, width * o), row B where the run's row is x_0 (`hit`, (n_blocks, B, width))."""
    nb, rows, width = hit.shape
    z = fixed_bmm(xs, wb).reshape(nb, rows + 1, width, -1)
    return torch.where(hit.unsqueeze(-1), z[:, rows:], z[:, :rows])


def shared_weight_grad(xs: torch.Tensor, g: torch.Tensor, hit: torch.Tensor) -> torch.Tensor:
    """Each run's weight and bias gradient, its rows (B, d + 1) transposed times its g (B, o), in the
    blocks' layout (n_blocks, d + 1, width * o): over the shared rows, with g (n_blocks, B, width, o)
    moved from the replaced position (`hit`) to row B (x_0)."""
    nb, rows = g.shape[:2]
    mask = hit.unsqueeze(-1)
    at_x0 = g.masked_fill(~mask, 0.0).sum(dim=1, keepdim=True)  # exact: one nonzero term at most
    ext = torch.cat([g.masked_fill(mask, 0.0), at_x0], dim=1)
    return rows_weight_grad(xs, ext.reshape(nb, rows + 1, -1))


def rows_weight_grad(xs: torch.Tensor, ext: torch.Tensor) -> torch.Tensor:
    """The blocks' weight and bias gradients (n_blocks, d + 1, width * o): their shared rows xs (n_blocks,
    B + 1, d + 1) transposed times the runs' output gradients ext (n_blocks, B + 1, width * o) at those
    rows (a run's gradient at its replaced position moved to row B, zeros in row B otherwise)."""
    return fixed_bmm(xs.transpose(1, 2), ext)


def run_diagonal_product(g: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Per run, the sum over the batch of its g (n_blocks, B, width) times its units h (n_blocks, B,
    width, u): (n_blocks, width, u), as the diagonal of one product per block, (width, B) @ (B, width * u)
    (a fixed shape; an entry is a sum of the run's own terms only, the off-diagonal ones are dropped)."""
    nb, rows, width, u = h.shape
    full = fixed_bmm(g.transpose(1, 2), h.reshape(nb, rows, width * u)).reshape(nb, width, width, u)
    return full.diagonal(0, 1, 2).movedim(-1, 1)


# Rows an evaluation product covers at once on the CPU (its (models x rows) outputs then stay in cache).
EVAL_CACHE_FLOATS = 2**19


@dataclass(frozen=True)
class LabelledRows:
    """A binary split prepared for evaluating many dense models: rows with label 1 first (`n1` of them),
    each row with a trailing 1 (the bias), the label-1 rows negated if `signed` (one copy of the split)."""

    x: torch.Tensor  # (N, d + 1)
    n1: int
    signed: bool

    @staticmethod
    def build(x: torch.Tensor, y: torch.Tensor, signed: bool) -> LabelledRows:
        """Sort the rows by label (1 first, otherwise in order), append the bias column, negate if `signed`."""
        order = torch.argsort((y == 0).to(torch.int8), stable=True)
        xa = with_ones(x).index_select(0, order)
        n1 = int((y == 1).sum())
        if signed:
            xa[:n1].neg_()
        return LabelledRows(xa, n1, signed)

    def chunks(self, rows: int) -> list[tuple[int, int, bool]]:
        """(start, end, label is 1) of row chunks of at most `rows` rows that never mix the labels."""
        out = []
        for lo, hi, positive in ((0, self.n1, True), (self.n1, len(self.x), False)):
            out += [(s, min(s + rows, hi), positive) for s in range(lo, hi, rows)]
        return out


def signed_totals(u: torch.Tensor, positive: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed loss and correct count per model of margins u (M, R): u = -logit on label-1 rows and
    u = logit on label-0 rows, so the loss is softplus(u) and a row is correct where the prediction
    (logit > 0) equals the label, u < 0 on label-1 rows and u <= 0 on label-0 rows."""
    threshold = 40.0 if u.dtype == torch.float64 else 20.0  # where softplus(u) = u to the dtype's precision
    loss = torch.nn.functional.softplus(u, threshold=threshold).sum(dim=1)
    correct = (u < 0) if positive else (u <= 0)
    return loss, correct.sum(dim=1).to(u.dtype)


def eval_rows_at_once(rows_per_chunk: int, width: int, device: torch.device) -> int:
    """Rows per evaluation product: `rows_per_chunk` (the memory budget's), on the CPU at most what
    keeps (width x rows) outputs in cache."""
    if device.type != "cpu":
        return rows_per_chunk
    return max(16, min(rows_per_chunk, EVAL_CACHE_FLOATS // max(width, 1)))


def chunked_totals(
    rows: LabelledRows,
    rows_per_chunk: int,
    width: int,
    like: torch.Tensor,
    margins: Callable[[int, int, bool], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed loss and correct count (M,) over the chunks of `rows` (`eval_rows_at_once` of an evaluation
    product `width` outputs wide), `margins(lo, hi, positive)` giving a chunk's (M, hi - lo) margins
    (`signed_totals`); dtype and device those of `like`."""
    m = len(like)
    loss = torch.zeros(m, dtype=like.dtype, device=like.device)
    corr = torch.zeros_like(loss)
    for lo, hi, positive in rows.chunks(eval_rows_at_once(rows_per_chunk, width, like.device)):
        chunk_loss, chunk_corr = signed_totals(margins(lo, hi, positive), positive)
        loss += chunk_loss
        corr += chunk_corr
    return loss, corr
