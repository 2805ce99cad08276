"""Throughput of the vectorised trainer against the plain reference trainer, for every model.

Trains each model with both trainers in one process, alternating them `--repeats` times (3; a
shared machine's load changes within a run, and then hits both), and prints one line per model with
the medians of model-steps/s of each and of their ratio (with the repeats' range), the vectorised
time per model beside its arithmetic floor (the model's FLOPs for the training steps and the logged
evaluations at the benchmark's shape, `flops_per_model`, over this machine's float32 GEMM rate
measured in the same run at the same thread count) and the peak memory per model, then a last line
with the smallest ratio. Models: logistic regression and the MLP (h = 10, dropout 0.2) on
mnist_binary-sized synthetic rows (d = 50, N ~ 10,400, b = 32, cadence 50), and the CNN on
the study's 3x32x32 input (size s, 10 classes, b = 32, weights logged only at the first
and last step). Peak memory is the peak resident-set growth during each trainer's call
(Linux VmHWM; on CUDA torch's peak allocated GPU memory) divided by the models trained at
once; freed memory is handed back to the kernel before each call (the benchmark otherwise
keeps freed memory for reuse, as pipeline jobs do), but glibc keeps small blocks, so figures
below about 1 MiB are lower bounds. Usage: python benchmarks/train_throughput.py [--models 1000] [--device auto]
[--only logreg,mlp,cnn] [--cnn-models 16] [--cnn-size 16] [--cnn-shape 3x32x32] [--threads 2] [--malloc-default]
[--repeats 3] [--gpu-scale]. `--gpu-scale` times every model at GPU scale in one command (GPU_SCALE: 100,000
logistic regressions, 20,000 MLPs, 1,000 CNNs for 512 steps, one reference run each, one repeat, a 60,000
MiB budget capped by the GPU's free memory); options given explicitly override it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from sgd_privacy.jobs import release_freed_memory, retain_freed_memory
from sgd_privacy.train.batched import DeviceData, Runs, Schedule, chunking, device_budget_mb, train_many
from sgd_privacy.train.models import CNN, MLP, LogReg, Model
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


def synthetic_images(n: int, shape: tuple[int, int, int], classes: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    """Random images in [0, 1] with random labels (throughput does not depend on the values)."""
    rng = np.random.default_rng(seed)
    sizes = {"train": n, "val": max(n // 5, 1), "test": max(n // 5, 1)}
    out = {}
    for split, size in sizes.items():
        out[f"x_{split}"] = rng.random((size, *shape), dtype=np.float32)
        out[f"y_{split}"] = rng.integers(0, classes, size)
    return out


class PeakMemory:
    """Peak memory above the level at entry: the kernel's peak resident set size (VmHWM, reset on
    entry) on the CPU, torch's peak allocated memory on CUDA."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak, self._base = device, 0, 0

    @staticmethod
    def _status(key: str) -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            release_freed_memory()  # memory retained for reuse would otherwise hide this call's growth
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current resident set size
            self._base = self._status("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self.peak = self._status("VmHWM") - self._base


@dataclass(frozen=True)
class Case:
    """One model to benchmark: its network, data, schedule and how many runs each trainer trains."""

    name: str
    model: Model
    arrays: dict[str, np.ndarray]
    schedule: Schedule
    models: int
    reference_models: int


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, int]:
    """Seconds and peak memory (bytes) of one call."""
    with PeakMemory(device) as mem:
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return seconds, mem.peak


def gemm_gflops(device: torch.device, size: int = 1024, repeats: int = 10) -> float:
    """This machine's float32 matrix-product throughput: the best of `repeats` (size x size) products
    at the current thread count (GFLOP/s)."""
    a = torch.rand(size, size, device=device)
    b = torch.rand(size, size, device=device)
    best = float("inf")
    for _ in range(repeats + 1):  # the first call loads the kernels
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def forward_flops(model: Model) -> int:
    """Multiply-add FLOPs (2 per multiply-add) of one example's forward pass through the model's
    dense layers and convolutions (activations, pooling and the loss not counted)."""
    if isinstance(model, LogReg):
        return 2 * model.d
    if isinstance(model, MLP):
        return 2 * model.d * model.hidden + 2 * model.hidden
    if isinstance(model, CNN):
        c, h, w = model.in_shape
        s, s2 = model.size, 2 * model.size
        convs = 9 * h * w * (c * s + s * s) + 9 * (h // 2) * (w // 2) * (s * s2 + s2 * s2)
        flat = s2 * (h // 4) * (w // 4)
        return 2 * convs + 2 * (flat * s2 + s2 * model.n_classes)
    raise TypeError(type(model).__name__)


def first_layer_flops(model: Model) -> int:
    """Forward FLOPs of the first layer, whose input gradient training does not need."""
    if isinstance(model, CNN):
        c, h, w = model.in_shape
        return 2 * 9 * h * w * c * model.size
    return 2 * model.d * (model.hidden if isinstance(model, MLP) else 1)


def flops_per_model(case: Case) -> int:
    """Arithmetic of one run at the case's shape: each training step's forward, weight gradient and
    input gradient (none for the first layer) over its batch, i.e. (3 x forward - first layer) per
    example, plus every logged evaluation's forward over the training and validation sets."""
    model, sched = case.model, case.schedule
    n_rows = len(case.arrays["x_train"]) - 1
    steps = sched.epochs * sched.steps_per_epoch(n_rows)
    fwd = forward_flops(model)
    train = steps * sched.batch_size * (3 * fwd - first_layer_flops(model))
    evaluated = len(case.arrays["x_train"]) + len(case.arrays["x_val"])
    return train + len(sched.log_steps(n_rows)) * evaluated * fwd


def run_case(case: Case, device: torch.device, budget_mb: int, gflops: float, repeats: int = 1) -> float:
    """Benchmark one model with both trainers, alternating `repeats` times (reference, then vectorised),
    print its line with the median of the repeats' ratios and their range, and return that median."""
    n_rows = len(case.arrays["x_train"]) - 1
    steps = case.schedule.epochs * case.schedule.steps_per_epoch(n_rows)
    few = {k: v[:65] for k, v in case.arrays.items()}  # warm-up: two steps on 64 rows loads the kernels
    warm = Schedule(case.schedule.lr, case.schedule.batch_size, 1, 100)
    train_reference(case.model, few, seed=0, replace_index=1, schedule=warm, dtype=torch.float32)
    data = DeviceData.from_arrays(case.arrays, device, torch.float32)
    runs = Runs(
        np.arange(case.models) // 10, 1 + np.arange(case.models) % 10 * 97 % n_rows, np.zeros(case.models, bool)
    )
    few_data = DeviceData.from_arrays(few, device, torch.float32)
    train_many(case.model, few_data, Runs(np.arange(2), np.arange(1, 3), np.zeros(2, bool)), warm, progress=None)
    ref_rates, vec_rates, vec_seconds, ref_mem, vec_mem = [], [], [], 0, 0
    for _ in range(repeats):  # alternating, so that a change of the machine's load hits both trainers
        ref_s = 0.0
        for k in range(case.reference_models):
            s, mem = timed(
                lambda k=k: train_reference(
                    case.model, case.arrays, seed=k, replace_index=1 + k, schedule=case.schedule, dtype=torch.float32
                ),
                torch.device("cpu"),
            )
            ref_s, ref_mem = ref_s + s, max(ref_mem, mem)
        vec_s, mem = timed(
            lambda: train_many(case.model, data, runs, case.schedule, budget_mb=budget_mb, progress=None), device
        )
        vec_mem = max(vec_mem, mem)
        ref_rates.append(case.reference_models * steps / ref_s)
        vec_rates.append(case.models * steps / vec_s)
        vec_seconds.append(vec_s)
    ratios = [v / r for v, r in zip(vec_rates, ref_rates, strict=True)]
    ratio, ref_rate, vec_rate = (float(np.median(x)) for x in (ratios, ref_rates, vec_rates))
    spread = f" (median of {repeats} alternating repeats, {min(ratios):.2f}-{max(ratios):.2f})" if repeats > 1 else ""
    at_once = min(case.models, chunking(case.model, case.schedule, n_rows + 1, budget_mb, 4)[0])
    path = f", {case.model.path_for(device)} conv" if isinstance(case.model, CNN) else ""
    flops = flops_per_model(case)
    print(
        f"{case.name}: reference {ref_rate:.1f} model-steps/s, vectorised {vec_rate:.1f} model-steps/s "
        f"({case.models} models x {steps} steps, {at_once} at once, {device}{path}), "
        f"ratio {ratio:.2f}{spread}; per model: vectorised {1e3 * float(np.median(vec_seconds)) / case.models:.2f} ms, "
        f"arithmetic floor {1e3 * flops / (gflops * 1e9):.2f} ms ({flops / 1e6:.1f} MFLOP at {gflops:.0f} GFLOP/s); "
        f"peak MiB/model: reference {ref_mem / 2**20:.1f}, vectorised {vec_mem / 2**20 / at_once:.2f}",
        flush=True,
    )
    return ratio


def cases(args: argparse.Namespace) -> list[Case]:
    """The benchmarked models, in the order logreg, mlp, cnn, restricted to --only."""
    vectors = synthetic()
    n_rows = len(vectors["x_train"]) - 1
    epochs = -(-args.steps // (n_rows // 32))
    dense = Schedule(lr=0.5, batch_size=32, epochs=epochs, cadence=50)
    shape = tuple(int(v) for v in args.cnn_shape.split("x"))
    if len(shape) != 3:
        raise SystemExit(f"--cnn-shape must be CxHxW, e.g. 3x32x32 or 1x28x28; got {args.cnn_shape!r}")
    images = synthetic_images(args.cnn_rows, (shape[0], shape[1], shape[2]))
    cnn_epochs = -(-args.cnn_steps // ((args.cnn_rows - 1) // 32))
    cnn_steps = cnn_epochs * ((args.cnn_rows - 1) // 32)
    cnn = Schedule(lr=0.1, batch_size=32, epochs=cnn_epochs, cadence=cnn_steps)
    all_cases = {
        "logreg": Case("logreg (d=50)", LogReg(50), vectors, dense, args.models, args.reference_models),
        "mlp": Case(
            f"mlp (d=50, h={args.hidden}, dropout 0.2)",
            MLP(50, args.hidden, 0.2),
            vectors,
            dense,
            args.mlp_models,
            args.reference_models,
        ),
        "cnn": Case(
            f"cnn ({args.cnn_shape}, s={args.cnn_size}, {args.cnn_rows} rows)",
            CNN((shape[0], shape[1], shape[2]), args.cnn_size, 10, args.conv_path),
            images,
            cnn,
            args.cnn_models,
            args.cnn_reference_models,
        ),
    }
    unknown = set(args.only) - set(all_cases)
    if unknown:
        raise SystemExit(f"--only: unknown model(s) {sorted(unknown)}; choose from {list(all_cases)}")
    return [all_cases[name] for name in all_cases if name in args.only]


# --gpu-scale: sizes at which a GPU's throughput shows (the study's CNN grid is 1,000 models)
GPU_SCALE = {
    "models": 100_000,
    "mlp_models": 20_000,
    "cnn_models": 1_000,
    "cnn_steps": 512,
    "reference_models": 1,
    "cnn_reference_models": 1,
    "budget_mb": 60_000,
    "repeats": 1,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-scale", action="store_true", help="every model at GPU scale (GPU_SCALE)")
    parser.add_argument("--models", type=int, default=1000, help="logistic-regression runs, vectorised trainer")
    parser.add_argument("--reference-models", type=int, default=2, help="runs per dense model, reference trainer")
    parser.add_argument("--steps", type=int, default=1900, help="steps of the dense models (whole epochs)")
    parser.add_argument("--mlp-models", type=int, default=200, help="MLP runs, vectorised trainer")
    parser.add_argument("--hidden", type=int, default=10, help="MLP hidden units")
    parser.add_argument("--cnn-models", type=int, default=16, help="CNN runs, vectorised trainer")
    parser.add_argument("--cnn-reference-models", type=int, default=2, help="CNN runs, reference trainer")
    parser.add_argument("--cnn-steps", type=int, default=64, help="CNN steps (whole epochs)")
    parser.add_argument("--cnn-size", type=int, default=16, help="CNN size s")
    parser.add_argument("--cnn-shape", default="3x32x32", help="CNN input CxHxW (mnist5k: 1x28x28)")
    parser.add_argument("--cnn-rows", type=int, default=257, help="CNN training rows (8 steps per epoch)")
    parser.add_argument("--conv-path", default="auto", choices=["auto", "exact", "fast"], help="CNN convolutions")
    parser.add_argument("--only", type=lambda s: s.split(","), default=["logreg", "mlp", "cnn"], help="e.g. mlp,cnn")
    parser.add_argument("--device", default="auto", help="vectorised trainer's device: auto, cpu or cuda")
    parser.add_argument("--budget-mb", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3, help="alternating timings of both trainers per model")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--malloc-default", action="store_true", help="leave glibc's malloc settings as they are")
    if parser.parse_known_args()[0].gpu_scale:
        parser.set_defaults(**GPU_SCALE)  # options given on the command line still win
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.malloc_default:
        retained = "default malloc"
    else:  # as every pipeline job does (sgd_privacy.jobs.torch_job); both trainers run under it
        retained = "freed memory retained" if retain_freed_memory() else "default malloc (not glibc)"
    device = pick_device(args.device)
    print(
        f"threads {torch.get_num_threads()}, {retained}, vectorised trainer on {device}; reference on cpu", flush=True
    )
    budget = device_budget_mb(args.budget_mb, device)  # on CUDA: at most 90% of the free GPU memory
    gflops = gemm_gflops(device)
    print(
        f"float32 GEMM (1024 x 1024 x 1024) on {device}: {gflops:.1f} GFLOP/s, the arithmetic floor's rate", flush=True
    )
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be at least 1, got {args.repeats}")
    ratios = {case.name: run_case(case, device, int(budget), gflops, args.repeats) for case in cases(args)}
    worst = min(ratios, key=ratios.__getitem__)
    print(f"smallest ratio vectorised/reference: {ratios[worst]:.2f} ({worst})")


if __name__ == "__main__":
    main()
