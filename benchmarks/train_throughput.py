"""Throughput of the vectorised trainer against the plain reference trainer (one process, one run).

Trains mnist_binary-sized logistic-regression runs (d = 50, N ~ 10,400, b = 32, T = 1900 steps)
on synthetic rows of norm <= 1 with both trainers and prints models/s for each; the last
line is their ratio. Usage: python benchmarks/train_throughput.py [--models 1000] [--device auto]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sgd_privacy.train.batched import DeviceData, Runs, Schedule, train_many
from sgd_privacy.train.models import LogReg
from sgd_privacy.train.reference import train_reference
from sgd_privacy.train.shard import pick_device


def synthetic(n: int = 10_398, d: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    """Separable-ish binary data shaped like mnist_binary after PCA-50 (rows of norm <= 1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + 1155 + 1902, d)).astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1.0) * 2
    y = (x @ rng.normal(size=d) > 0).astype(np.int64)
    split = {"train": slice(0, n), "val": slice(n, n + 1155), "test": slice(n + 1155, None)}
    return {f"{k}_{s}": (x if k == "x" else y)[sl] for s, sl in split.items() for k in ("x", "y")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000, help="runs for the vectorised trainer")
    parser.add_argument("--reference-models", type=int, default=3, help="runs for the reference trainer")
    parser.add_argument("--steps", type=int, default=1900)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--budget-mb", type=int, default=4096)
    args = parser.parse_args()
    arrays = synthetic()
    n_rows = len(arrays["x_train"]) - 1
    epochs = -(-args.steps // (n_rows // 32))
    schedule = Schedule(lr=0.5, batch_size=32, epochs=epochs, cadence=50)
    model = LogReg(50)
    print(
        f"{args.steps} steps requested, trained {epochs * (n_rows // 32)} ({epochs} epochs of {n_rows // 32}), "
        f"{len(schedule.log_steps(n_rows))} logs; threads {torch.get_num_threads()}"
    )

    start = time.perf_counter()
    for k in range(args.reference_models):
        train_reference(model, arrays, seed=k, replace_index=1 + k, schedule=schedule, dtype=torch.float32)
    ref_rate = args.reference_models / (time.perf_counter() - start)
    print(f"reference trainer: {ref_rate:.3f} models/s ({1 / ref_rate:.2f} s per model, cpu)")

    device = pick_device(args.device)
    data = DeviceData.from_arrays(arrays, device, torch.float32)
    runs = Runs(np.arange(args.models) // 10, 1 + np.arange(args.models) % 10 * 97, np.zeros(args.models, bool))
    train_many(model, data, runs.take(slice(0, 8)), schedule, progress=None)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    train_many(model, data, runs, schedule, budget_mb=args.budget_mb, progress=None)
    if device.type == "cuda":
        torch.cuda.synchronize()
    vec_rate = args.models / (time.perf_counter() - start)
    print(f"vectorised trainer: {vec_rate:.1f} models/s ({1000 / vec_rate:.2f} ms per model, {device})")
    print(f"ratio vectorised/reference: {vec_rate / ref_rate:.1f}")


if __name__ == "__main__":
    main()
