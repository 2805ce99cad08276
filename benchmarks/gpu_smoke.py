"""GPU smoke test: run it first on a GPU node (about a minute on one GPU); it checks the determinism contract there.

Prints torch, CUDA and cuDNN versions, the GPU's name and free memory, and the TF32 and determinism
settings a pipeline job sets (`sgd_privacy.jobs.torch_job`); then, for logistic regression, the MLP
(dropout) and the CNN (the path `auto` picks: fast on CUDA, exact on the CPU), one line each for:
the largest difference between a rerun of the same runs (must be 0), between two groupings of the
runs (one batch vs two halves: 0 for logistic regression, float32 rounding for the others on a GPU,
0 on the CPU), between the device and the CPU (float32 rounding; 0 when the device is the CPU), the
host-device synchronisations, host-value tensors and aten ops per training step, and model-steps/s.
The last line says `smoke test passed` or lists what failed (exit status 1).
Usage: python benchmarks/gpu_smoke.py [--device auto|cuda|cpu] [--tiny] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from sgd_privacy.jobs import determinism_settings, torch_job
from sgd_privacy.train.batched import DeviceData, Runs, Schedule, TrainResult, train_batch
from sgd_privacy.train.device import device_info, pick_device
from sgd_privacy.train.models import CNN, MLP, LogReg, Model
from sgd_privacy.train.opcount import OpCounts

ROUNDING = 1e-5  # relative difference allowed where the contract says "equal to float32 rounding"


@dataclass(frozen=True)
class Case:
    """One model of the smoke test: network, data, schedule, runs on the device, runs compared on the CPU."""

    name: str
    model: Model
    arrays: dict[str, np.ndarray]
    schedule: Schedule
    models: int
    cpu_models: int
    groupings_exact: bool  # whether two groupings must agree bit for bit on this device


def vectors(n: int, d: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Binary rows of norm <= 1/2 with a linear label."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + n // 5, d)).astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1.0) * 2
    y = (x @ rng.normal(size=d) > 0).astype(np.int64)
    return {"x_train": x[:n], "y_train": y[:n], "x_val": x[n:], "y_val": y[n:]}


def images(n: int, shape: tuple[int, int, int], classes: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    """Random images with random labels."""
    rng = np.random.default_rng(seed)
    val = max(n // 5, 2)
    return {
        "x_train": rng.random((n, *shape), dtype=np.float32),
        "y_train": rng.integers(0, classes, n),
        "x_val": rng.random((val, *shape), dtype=np.float32),
        "y_val": rng.integers(0, classes, val),
    }


def cases(tiny: bool, device: torch.device) -> list[Case]:
    """The three models at smoke-test size (about a minute on one GPU) or tiny (seconds on a CPU)."""
    gpu = device.type == "cuda"
    if tiny:
        vec, img, shape = vectors(201, 8), images(41, (2, 8, 8), 3), (2, 8, 8)
        sizes, dense, conv = (8, 8, 4), Schedule(0.5, 8, 2, 10), Schedule(0.1, 8, 2, 5)
        cnn = CNN(shape, 2, 3)
    else:
        vec, img, shape = vectors(10_001, 50), images(257, (3, 32, 32)), (3, 32, 32)
        sizes = (4096, 1024, 64) if gpu else (256, 64, 4)
        dense, conv, cnn = Schedule(0.5, 32, 1, 100), Schedule(0.1, 32, 2, 8), CNN(shape, 16, 10)
    return [
        Case("logreg", LogReg(vec["x_train"].shape[1]), vec, dense, sizes[0], 4, True),
        Case("mlp", MLP(vec["x_train"].shape[1], 10, 0.2), vec, dense, sizes[1], 4, not gpu),
        Case("cnn", cnn, img, conv, sizes[2], 2, not gpu),
    ]


def runs_for(count: int, n_rows: int) -> Runs:
    """`count` runs: seeds in blocks of 4, spread replace indices, variable init."""
    idx = np.arange(count)
    return Runs(idx // 4, 1 + idx * 97 % (n_rows - 1), np.zeros(count, bool))


def max_diff(a: TrainResult, b: TrainResult) -> tuple[float, float]:
    """Largest absolute and relative (to the largest weight) difference between two results' weights."""
    wa, wb = np.asarray(a.weights, np.float64), np.asarray(b.weights, np.float64)
    diff = float(np.abs(wa - wb).max())
    return diff, diff / max(float(np.abs(wb).max()), 1e-30)


def synced(device: torch.device) -> Callable[[], None]:
    """A function waiting for the device's queued work (nothing to wait for on the CPU)."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def check(case: Case, device: torch.device, failures: list[str]) -> None:
    """Print the smoke test's lines for one model and append what failed to `failures`."""
    data = DeviceData.from_arrays(case.arrays, device, torch.float32)
    runs = runs_for(case.models, len(case.arrays["x_train"]))
    train_batch(case.model, data, runs.take(slice(0, 2)), case.schedule)  # warm-up: kernels, cuDNN plans
    first = train_batch(case.model, data, runs, case.schedule)
    rerun = train_batch(case.model, data, runs, case.schedule)
    diff, _ = max_diff(rerun, first)
    print(f"{case.name}: rerun max|diff| {diff:.3g} (must be 0)")
    if diff != 0:
        failures.append(f"{case.name} rerun differs by {diff:.3g}")

    half = len(runs) // 2
    parts = [train_batch(case.model, data, runs.take(s), case.schedule) for s in (slice(0, half), slice(half, None))]
    diff, rel = max_diff(TrainResult.concat(parts), first)
    want = "0" if case.groupings_exact else f"rounding, relative <= {ROUNDING:g}"
    print(f"{case.name}: groupings (1 batch vs 2 halves) max|diff| {diff:.3g}, relative {rel:.3g} (expected {want})")
    if (case.groupings_exact and diff != 0) or rel > ROUNDING:
        failures.append(f"{case.name} groupings differ by {diff:.3g} (relative {rel:.3g})")

    few = runs.take(slice(0, case.cpu_models))  # the CPU's own path (a CNN's `auto`: exact there)
    on_cpu = train_batch(
        case.model, DeviceData.from_arrays(case.arrays, torch.device("cpu"), torch.float32), few, case.schedule
    )
    sub = TrainResult(first.steps, first.weight_steps, first.weights[: len(few)], {}, first.diverged[: len(few)])
    diff, rel = max_diff(sub, on_cpu)
    want = "0" if device.type == "cpu" else f"rounding, relative <= {ROUNDING:g}"
    print(f"{case.name}: {device.type} vs cpu max|diff| {diff:.3g}, relative {rel:.3g} (expected {want})")
    if (device.type == "cpu" and diff != 0) or rel > ROUNDING:
        failures.append(f"{case.name} {device.type} vs cpu differ by {diff:.3g} (relative {rel:.3g})")

    small = runs.take(slice(0, min(len(runs), 8)))
    spe = case.schedule.steps_per_epoch(len(case.arrays["x_train"]) - 1)
    counts = []
    for epochs in (1, 2):
        counter = OpCounts()
        with counter:
            train_batch(case.model, data, small, Schedule(case.schedule.lr, case.schedule.batch_size, epochs, 10**9))
        counts.append(counter)
    per = {k: (counts[1].summary()[k] - counts[0].summary()[k]) / spe for k in ("syncs", "from_host", "ops")}
    note = " (on the CPU, rng.hash32's seed check: 2 per MLP step; none on a GPU)" if device.type == "cpu" else ""
    print(
        f"{case.name}: per step {per['syncs']:.2f} host-device syncs, {per['from_host']:.2f} host-value tensors, "
        f"{per['ops']:.1f} aten ops (the epoch's permutation amortised){note}"
    )

    wait = synced(device)
    wait()
    start = time.perf_counter()
    train_batch(case.model, data, runs, case.schedule)
    wait()
    seconds = time.perf_counter() - start
    steps = case.schedule.epochs * spe
    path = f", {case.model.path_for(device)} conv" if isinstance(case.model, CNN) else ""
    print(
        f"{case.name}: {len(runs) * steps / seconds:.1f} model-steps/s ({len(runs)} models x {steps} steps{path})",
        flush=True,
    )


def header(device: torch.device, settings: dict[str, object]) -> None:
    """Versions, the device, its free memory and the determinism settings."""
    info = device_info(device)
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda or 'none (CPU build)'}, cuDNN {cudnn or 'none'}")
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        print(f"device {device}: {info['gpu']}, free memory {free / 2**30:.1f} of {total / 2**30:.1f} GiB")
    else:
        print(f"device cpu ({torch.get_num_threads()} threads); no GPU in use")
    print("determinism: " + " ".join(f"{k}={v}" for k, v in settings.items()), flush=True)


def main() -> None:
    """Run the smoke test; exit 1 when a check fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (the GPU when present), cuda or cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (seconds on a CPU; for the test suite)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    args = parser.parse_args()
    torch_job(args.threads)  # as a pipeline job: threads, malloc, CUDA determinism settings
    device = pick_device(args.device)
    header(device, determinism_settings())
    failures: list[str] = []
    for case in cases(args.tiny, device):
        check(case, device, failures)
    if failures:
        print("smoke test FAILED: " + "; ".join(failures))
        sys.exit(1)
    print("smoke test passed")


if __name__ == "__main__":
    main()
