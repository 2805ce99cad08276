"""Cost estimates of a config's experiments from `make bench` throughput figures (benchmarks/study_cost.py).

Every figure is an estimate: a measured rate (model-steps per second of the vectorised trainer,
peak MiB per model) scaled by the work of each experiment relative to the benchmark's. Work per
training step of a dense model is (b + N / cadence) rows x its parameters: the batch's training
pass plus the full-training-set evaluation at every log, spread over the steps between logs. A CNN
step is scaled by b, its logged evaluations count as forward passes at a third of a training step
per row. DP jobs have no benchmark: their hours are "not measured".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

# The benchmark's settings (benchmarks/train_throughput.py): dense models on 10,398 training rows, d = 50,
# b = 32, a log every 50 steps; the CNN on 257 rows, b = 32, logged only at its first and last step.
BENCH_DENSE_ROWS, BENCH_D, BENCH_BATCH, BENCH_CADENCE, BENCH_HIDDEN = 10_398, 50, 32, 50, 10
FORWARD_SHARE = 1.0 / 3.0  # a forward pass per row, as a share of a training step's per-row work (assumed)
# Training rows after the validation split (the study's Table 1; cifar10: the study.yaml subset), features.
DATASET_SIZES = {
    "mnist_binary": (10_397, 50),
    "cifar2": (9_000, 64),
    "adult": (29_305, 100),
    "forest": (378_783, 49),
    "cifar10": (15_000, 3 * 32 * 32),
}

# The DP study's standard sets: training and test images before the validation split.
DP_SIZES = {"mnist": (60_000, 10_000), "cifar10_full": (50_000, 10_000), "cifar100": (50_000, 10_000)}

_LINE = re.compile(
    r"^(?P<model>logreg|mlp|cnn)\b.*?vectorised (?P<rate>[\d.]+) model-steps/s \((?P<models>\d+) models x "
    r"(?P<steps>\d+) steps, (?P<at_once>\d+) at once, (?P<device>\w+).*?peak MiB/model: reference [\d.]+, "
    r"vectorised (?P<mib>[\d.]+)"
)
_THREADS = re.compile(r"^threads (\d+)")


class CostError(ValueError):
    """Benchmark output or a config that the cost model cannot use; the message says what is missing."""


@dataclass(frozen=True)
class Rate:
    """One benchmark line: vectorised model-steps per second and peak MiB per model."""

    rate: float
    mib_per_model: float


@dataclass
class Bench:
    """Rates per (model, device) and the CPU threads the benchmark ran with."""

    rates: dict[tuple[str, str], Rate] = field(default_factory=dict)
    threads: int = 1


def parse_bench(text: str) -> Bench:
    """The rates in `make bench` output (one or more runs; a later line for the same model and device wins)."""
    bench = Bench()
    for line in text.splitlines():
        line = line.strip()
        if m := _THREADS.match(line):
            bench.threads = int(m.group(1))
        if m := _LINE.match(line):
            bench.rates[(m["model"], m["device"])] = Rate(float(m["rate"]), float(m["mib"]))
    if not bench.rates:
        raise CostError("no benchmark lines found (expected `make bench` output: 'logreg (d=50): reference ...')")
    return bench


@dataclass
class Estimate:
    """One experiment's (or stage's) estimated cost."""

    name: str
    jobs: int
    models: int
    cpu_hours: float | None  # core-hours (wall hours x the benchmark's threads); None: not measured
    gpu_hours: float | None
    disk_gb: float
    peak_mib_per_job: float | None
    note: str = ""


def dense_params(model: str, d: int, hidden: int) -> int:
    """Parameters of logistic regression (d + 1) or the one-hidden-layer MLP ((d + 1) h + h + 1)."""
    return d + 1 if model == "logreg" else (d + 1) * hidden + hidden + 1


def cnn_params(channels: int, size: int, classes: int = 10, side: int = 32) -> int:
    """Parameters of the study's CNN of width s (82,554 for s = 16 on 3x32x32)."""
    s = size
    convs = (9 * channels * s + s) + (9 * s * s + s) + (9 * s * 2 * s + 2 * s) + (9 * 4 * s * s + 2 * s)
    flat = 2 * s * (side // 4) ** 2
    return convs + (flat * 2 * s + 2 * s) + (2 * s * classes + classes)


def _models(exp: dict) -> int:
    seeds = exp.get("seeds", 10)
    seeds = seeds if isinstance(seeds, int) else len(seeds)
    ri = exp.get("replace_indices", 4)
    ri = ri if isinstance(ri, int) else len(ri)
    return seeds * ri * len(exp.get("init_modes", ["variable", "fixed"]))


def _shards(exp: dict) -> int:
    seeds, ri = exp.get("seeds", 10), exp.get("replace_indices", 4)
    seeds = seeds if isinstance(seeds, int) else len(seeds)
    ri = ri if isinstance(ri, int) else len(ri)
    shard = exp.get("shard", {})
    blocks = math.ceil(seeds / shard.get("seeds", 50)) * math.ceil(ri / shard.get("replace_indices", 10))
    return blocks * len(exp.get("init_modes", ["variable", "fixed"]))


def _hours(bench: Bench, model: str, device: str, model_steps: float, scale: float) -> float | None:
    rate = bench.rates.get((model, device))
    if rate is None:
        return None
    wall = model_steps * scale / rate.rate / 3600
    return wall * (bench.threads if device == "cpu" else 1)


def experiment_cost(name: str, exp: dict, bench: Bench) -> Estimate:
    """Training cost of one experiment of the intrinsic-privacy grid (dense models or the CNN)."""
    if exp["dataset"] not in DATASET_SIZES:
        raise CostError(f"experiment {name!r}: no size for dataset {exp['dataset']!r} (known: {sorted(DATASET_SIZES)})")
    n, d = DATASET_SIZES[exp["dataset"]]
    b, cadence, model = exp.get("batch_size", 32), exp.get("cadence", 50), exp["model"]
    steps = exp.get("epochs", 10) * ((n - 1) // b)
    models, shards = _models(exp), _shards(exp)
    kept = exp.get("log_weights_at")
    n_logs = steps // cadence + 1
    if model == "cnn":
        params = cnn_params(3, exp.get("cnn_size", 16))
        eval_rows = n * 1.1 * n_logs * FORWARD_SHARE  # D_i and the validation rows at every log
        scale = (steps * b + eval_rows) / (steps * BENCH_BATCH)
        mib = bench.rates[("cnn", "cpu")].mib_per_model if ("cnn", "cpu") in bench.rates else None
    else:
        hidden = exp.get("hidden", 10)
        params = dense_params(model, d, hidden)
        bench_params = dense_params(model, BENCH_D, BENCH_HIDDEN)
        work = (b + n / cadence) * params
        scale = work / ((BENCH_BATCH + BENCH_DENSE_ROWS / BENCH_CADENCE) * bench_params)
        rate = bench.rates.get((model, "cpu"))
        mib = rate.mib_per_model * params / bench_params if rate else None
    weight_logs = len(kept) if kept else n_logs
    disk = models * (weight_logs * params * 4 + n_logs * 40) / 1e9
    per_shard = models / shards
    data_mib = n * 1.3 * d * 4 / 2**20  # training, validation and test arrays in float32
    peak = data_mib + per_shard * mib if mib is not None else None
    return Estimate(
        name,
        shards,
        models,
        _hours(bench, model, "cpu", models * steps, scale),
        _hours(bench, model, "cuda", models * steps, scale),
        disk,
        peak,
        f"{steps} steps",
    )


def lira_cost(cfg: dict, bench: Bench) -> Estimate | None:
    """The LiRA shadow runs: seeds x shadows CNN runs on half the pool, and their pool evaluation."""
    lira = cfg.get("mia", {}).get("lira", {})
    exp = cfg.get("experiments", {}).get(lira.get("experiment") or "")
    if not exp:
        return None
    runs = lira.get("seeds", 4) * lira.get("shadows", 64)
    pool, b = lira.get("pool_size", 10_000), exp.get("batch_size", 32)
    steps = lira.get("epochs", 20) * ((pool // 2 - 1) // b)
    scale = (steps * b + pool * FORWARD_SHARE) / (steps * BENCH_BATCH)
    model = exp["model"]
    disk = runs * pool * 2 * 4 / 1e9
    return Estimate(
        "lira (shadows)",
        lira.get("seeds", 4),
        runs,
        _hours(bench, model, "cpu", runs * steps, scale),
        _hours(bench, model, "cuda", runs * steps, scale),
        disk,
        None,
        f"{steps} steps",
    )


def mia_cost(cfg: dict, bench: Bench) -> Estimate | None:
    """Per-example losses of the attacked CNN runs at each attacked step (forward passes only)."""
    mia = cfg.get("mia", {})
    model_steps, disk, jobs, models = 0.0, 0.0, 0, 0
    rows = mia.get("n_members", 5000) + mia.get("n_nonmembers", 5000)
    for name, steps in mia.get("experiments", {}).items():
        exp = cfg["experiments"][name]
        if exp["model"] != "cnn":
            continue  # dense models: a forward pass over 10,000 rows per run, negligible
        n_steps = len(steps) if steps else 1
        n, _ = DATASET_SIZES[exp["dataset"]]
        per = (rows + n) * FORWARD_SHARE / BENCH_BATCH  # members, non-members, and the threshold rows
        model_steps += _models(exp) * n_steps * per
        disk += _models(exp) * n_steps * rows * 4 / 1e9
        jobs += _shards(exp)
        models += _models(exp)
    if not jobs:
        return None
    return Estimate(
        "mia losses (CNN)",
        jobs,
        models,
        _hours(bench, "cnn", "cpu", model_steps, 1.0),
        _hours(bench, "cnn", "cuda", model_steps, 1.0),
        disk,
        None,
    )


def dp_cost(confs: dict[str, dict], repeats: int, validation: dict[str, float]) -> Estimate | None:
    """The DP jobs: counted, hours not measured; disk from the per-example table (about a byte per row:
    every epoch, 3 attacks, every member and non-member; the half-split of each standard set)."""
    if not confs:
        return None
    rows = 0.0
    for conf in confs.values():
        if conf["dataset"] not in DP_SIZES:
            raise CostError(f"DP dataset {conf['dataset']!r}: size unknown (known: {sorted(DP_SIZES)})")
        n_train, n_test = DP_SIZES[conf["dataset"]]
        n_train -= round(validation.get(conf["dataset"], 0.1) * n_train)
        rows += (conf["epochs"] + 1) * 3 * (n_train // 2 + n_test // 2) * repeats
    jobs = len(confs) * repeats
    return Estimate("dp (all sweeps)", jobs, jobs, None, None, rows / 1e9, None)


def study_costs(cfg: dict, bench: Bench, dp_confs: dict[str, dict] | None = None) -> list[Estimate]:
    """Every experiment's estimate, then LiRA, the CNN's per-example losses and the DP jobs."""
    out = [experiment_cost(name, exp, bench) for name, exp in cfg.get("experiments", {}).items()]
    validation = {k: v.get("validation_fraction", 0.1) for k, v in cfg.get("datasets", {}).items()}
    validation = {"cifar10_full": 0.0, "cifar100": 0.0, **validation}
    repeats = cfg.get("dp", {}).get("repeats", 2)
    extra = [lira_cost(cfg, bench), mia_cost(cfg, bench), dp_cost(dp_confs or {}, repeats, validation)]
    return out + [e for e in extra if e is not None]


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "not measured"
    return f"{value:,.{digits}f}" if value < 1000 else f"{value:,.0f}"


def cost_table(estimates: list[Estimate], threads: int) -> str:
    """A fixed-width table of the estimates with a total row (totals of hours only over measured parts)."""
    head = (
        f"{'experiment':<22}{'jobs':>6}{'models':>9}{'CPU core-h':>13}{'GPU h':>14}{'disk GB':>9}{'peak MiB/job':>14}"
    )
    lines = [head]
    for e in estimates:
        lines.append(
            f"{e.name:<22}{e.jobs:>6,}{e.models:>9,}{_fmt(e.cpu_hours):>13}{_fmt(e.gpu_hours):>14}"
            f"{_fmt(e.disk_gb):>9}{_fmt(e.peak_mib_per_job, 0):>14}"
        )
    cpu = sum(e.cpu_hours for e in estimates if e.cpu_hours is not None)
    gpu = [e.gpu_hours for e in estimates if e.gpu_hours is not None]
    lines.append(
        f"{'total':<22}{sum(e.jobs for e in estimates):>6,}{sum(e.models for e in estimates):>9,}{_fmt(cpu):>13}"
        f"{_fmt(sum(gpu) if gpu else None):>14}{_fmt(sum(e.disk_gb for e in estimates)):>9}{'':>14}"
    )
    missing = [e.name for e in estimates if e.cpu_hours is None]
    lines.append(
        f"CPU core-hours at the benchmark's {threads} threads; totals leave out what is not measured"
        + (f" ({', '.join(missing)})." if missing else ".")
    )
    return "\n".join(line.rstrip() for line in lines)


def readme_bench(readme: str) -> str:
    """The benchmark output recorded in README.md: the first fenced block holding 'model-steps/s' lines."""
    for block in readme.split("```")[1::2]:
        if "model-steps/s" in block:
            return block
    raise CostError("README.md holds no fenced block of `make bench` output (lines with 'model-steps/s')")
