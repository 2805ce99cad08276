"""The products of the one-minibatch-per-seed step (`sgd_privacy.train.shared`), bit for bit: a block's
result does not depend on how many blocks share the call, where the block sits, which other runs fill
the block, or the thread count (the determinism contract's premise for the dense models)."""

import numpy as np
import pytest
import torch

from sgd_privacy.train.shared import (
    SeedBlocks,
    block_runs,
    fixed_bmm,
    from_slots,
    run_diagonal_product,
    shared_forward,
    shared_weight_grad,
    to_slots,
)


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


# (rows B + 1, features d + 1, outputs per run o): B = 8 makes 9-row products, which a multi-threaded
# MKL splits by thread when one block is alone in the call (the case fixed_bmm exists for).
SHAPES = [(9, 65, 1), (9, 11, 5), (33, 51, 1), (33, 51, 10), (17, 11, 1), (33, 51, 40)]


@pytest.mark.parametrize("rows, d, o", SHAPES)
def test_a_blocks_product_is_the_same_in_any_batch_position_and_thread_count(threads, rows, d, o):
    BLOCK = block_runs(o)
    gen = torch.Generator().manual_seed(rows * d * o)
    x0 = torch.randn(rows, d, generator=gen)
    w0 = torch.randn(d, BLOCK * o, generator=gen)
    g0 = torch.randn(rows, BLOCK * o, generator=gen)
    threads(1)
    forward, backward = fixed_bmm(x0[None], w0[None])[0], fixed_bmm(x0.T[None], g0[None])[0]
    for count in (1, 2, 3, 7, 40):
        for n_threads in (1, 2, 3):
            threads(n_threads)
            xs = torch.randn(count, rows, d, generator=gen)
            ws = torch.randn(count, d, BLOCK * o, generator=gen)
            gs = torch.randn(count, rows, BLOCK * o, generator=gen)
            at = count // 2
            xs[at], ws[at], gs[at] = x0, w0, g0
            assert torch.equal(fixed_bmm(xs, ws)[at], forward), (count, n_threads)
            assert torch.equal(fixed_bmm(xs.transpose(1, 2), gs)[at], backward), (count, n_threads)
    # a run's columns do not depend on its column in the block or on the block's other runs
    order = torch.randperm(BLOCK, generator=gen)
    cols = torch.arange(BLOCK * o).reshape(BLOCK, o)[order].reshape(-1)
    other = w0.clone()
    other[:, cols[o:]] = torch.randn(d, (BLOCK - 1) * o, generator=gen)
    moved = fixed_bmm(x0[None], other[:, cols][None])[0]
    assert torch.equal(moved[:, :o], forward[:, cols[:o]])


def test_slots_round_trip_and_blocks_hold_one_seed_each():
    assert [block_runs(o) for o in (1, 2, 3, 10, 16, 32, 100)] == [16, 16, 11, 4, 2, 1, 1]
    seed_slot = np.array([2, 0, 2, 1, 2] + [0] * 20)
    blocks = SeedBlocks.build(seed_slot, 16, torch.device("cpu"))
    assert blocks.n_blocks == 4  # seed 0: 21 runs in two blocks; seeds 1 and 2: one each
    source = blocks.source.reshape(blocks.n_blocks, 16)
    assert all(len(set(seed_slot[row.numpy()])) == 1 for row in source)
    assert (seed_slot[source[:, 0].numpy()] == blocks.block_seed.numpy()).all()
    m = len(seed_slot)
    params = [torch.randn(m, 7, 3), torch.randn(m, 3), torch.randn(m, 3, 1), torch.randn(m, 1)]
    back = from_slots(to_slots(params, blocks), blocks, 3)
    assert all(torch.equal(a, b) for a, b in zip(params, back, strict=True))


def one_hit_per_run(blocks, rows, width, gen):
    """A mask (blocks, rows, width) with at most one hit per run: run c of block n hits at a random row,
    or nowhere; the first run of the first block hits row 0 and the last run of the last block row B - 1."""
    mask = torch.zeros(blocks, rows, width, dtype=torch.bool)
    where = torch.randint(-rows, rows, (blocks, width), generator=gen)  # negative: no hit
    for n in range(blocks):
        for c in range(width):
            if where[n, c] >= 0:
                mask[n, where[n, c], c] = True
    mask[0, :, 0], mask[-1, :, -1] = False, False
    mask[0, 0, 0], mask[-1, rows - 1, -1] = True, True
    return mask


@pytest.mark.parametrize("rows, d, o", [(8, 11, 1), (8, 11, 5), (32, 51, 10)])
def test_the_selections_equal_each_runs_own_rows_through_a_plain_loop(rows, d, o):
    """`shared_forward` and `shared_weight_grad` equal each run's own rows (x_0 at its replaced position)
    through a plain loop."""
    gen = torch.Generator().manual_seed(rows * d * o)
    width, blocks = block_runs(o), 5
    xs = torch.randn(blocks, rows + 1, d, generator=gen, dtype=torch.float64)
    wb = torch.randn(blocks, d, width * o, generator=gen, dtype=torch.float64)
    g = torch.randn(blocks, rows, width, o, generator=gen, dtype=torch.float64)
    mask = one_hit_per_run(blocks, rows, width, gen)
    forward = shared_forward(xs, wb, mask)
    grad = shared_weight_grad(xs, g, mask)
    for n in range(blocks):
        for c in range(width):
            own = xs[n, :rows].clone()
            own[mask[n, :, c]] = xs[n, rows]
            cols = slice(c * o, (c + 1) * o)
            torch.testing.assert_close(forward[n, :, c], own @ wb[n, :, cols])
            torch.testing.assert_close(grad[n, :, cols], own.T @ g[n, :, c])


@pytest.mark.parametrize("rows, units", [(32, 10), (8, 3), (32, 32), (9, 100)])
def test_a_runs_diagonal_product_is_its_own_sum_in_any_block_layout(threads, rows, units):
    """`run_diagonal_product`: per run, the batch sum of g times its units (a plain loop), with the same
    bits alone or among other blocks and at any thread count, and untouched by another run's inf
    (blocks of 4, 11 and 1 run: a one-row product included)."""
    gen = torch.Generator().manual_seed(7)
    width = block_runs(units)
    g0 = torch.randn(1, rows, width, generator=gen)
    h0 = torch.randn(1, rows, width, units, generator=gen)
    alone = run_diagonal_product(g0, h0)[0]
    for c in range(width):
        torch.testing.assert_close(alone[c], (g0[0, :, c, None] * h0[0, :, c]).sum(dim=0))
    for count in (2, 7, 40):
        for n_threads in (1, 2, 3):
            threads(n_threads)
            g = torch.randn(count, rows, width, generator=gen)
            h = torch.randn(count, rows, width, units, generator=gen)
            g[count // 2], h[count // 2] = g0[0], h0[0]
            assert torch.equal(run_diagonal_product(g, h)[count // 2], alone), (count, n_threads)
    diverged = h0.clone()
    diverged[0, rows // 2, 0, units // 2] = float("inf")
    out = run_diagonal_product(g0, diverged)[0]
    assert not torch.isfinite(out[0]).all() and torch.equal(out[1:], alone[1:])
