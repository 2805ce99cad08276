"""The GPU smoke test (benchmarks/gpu_smoke.py) runs on the CPU at tiny sizes and reports what the contract
says there: reruns, groupings and the device-vs-CPU comparison all 0."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_test_runs_on_the_cpu_and_reports_zero_differences():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_smoke.py"), "--device", "cpu", "--tiny", "--threads", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"torch {__import__('torch').__version__}, CUDA ")
    assert any(
        line.startswith("determinism: CUBLAS_WORKSPACE_CONFIG=:4096:8 matmul.allow_tf32=False") for line in lines
    )
    for model in ("logreg", "mlp", "cnn"):
        assert f"{model}: rerun max|diff| 0 (must be 0)" in lines
        assert f"{model}: groupings (1 batch vs 2 halves) max|diff| 0, relative 0 (expected 0)" in lines
        assert f"{model}: cpu vs cpu max|diff| 0, relative 0 (expected 0)" in lines
        assert any(line.startswith(f"{model}: per step ") and "host-device syncs" in line for line in lines)
        assert any(line.startswith(f"{model}: ") and "model-steps/s" in line for line in lines)
    assert lines[-1] == "smoke test passed"


def test_gpu_scale_times_every_model_at_gpu_scale(monkeypatch):
    """One command (`--gpu-scale`) sets the GPU sizes for all three models; explicit options still win."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_throughput", ROOT / "benchmarks" / "train_throughput.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "train_throughput", bench)
    spec.loader.exec_module(bench)
    seen = {}

    def fake_cases(args):
        seen.update(vars(args))
        return [bench.Case(name, None, {}, None, 0, 0) for name in ("logreg", "mlp", "cnn")]

    monkeypatch.setattr(bench, "cases", fake_cases)

    def fake_run(case, device, budget, gflops, repeats):
        seen["repeats"] = repeats
        seen.setdefault("timed", []).append(case.name)
        return 1.0

    monkeypatch.setattr(bench, "run_case", fake_run)
    monkeypatch.setattr(sys, "argv", ["train_throughput.py", "--gpu-scale", "--cnn-models", "7", "--device", "cpu"])
    bench.main()
    assert seen["timed"] == ["logreg", "mlp", "cnn"]
    assert (seen["models"], seen["mlp_models"], seen["cnn_steps"], seen["budget_mb"]) == (100_000, 20_000, 512, 60_000)
    assert seen["cnn_models"] == 7 and seen["only"] == ["logreg", "mlp", "cnn"] and seen["repeats"] == 1


def test_the_arithmetic_floor_counts_training_steps_and_evaluations(monkeypatch):
    """The benchmark's FLOPs per model, by hand: logistic regression with d = 2 on 9 training rows
    (8 per neighbouring set, batch 4: 2 steps) and 3 validation rows, logged at steps 0, 1 and 2."""
    import importlib.util

    import torch

    from sgd_privacy.train.batched import Schedule
    from sgd_privacy.train.models import MLP, LogReg

    spec = importlib.util.spec_from_file_location("train_throughput", ROOT / "benchmarks" / "train_throughput.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "train_throughput", bench)
    spec.loader.exec_module(bench)
    arrays = {"x_train": [0] * 9, "x_val": [0] * 3}
    schedule = Schedule(lr=0.1, batch_size=4, epochs=1, cadence=1)
    # forward 2d = 4 per example; a step: forward + weight gradient, no input gradient (2 x 4 x 4 rows)
    logreg = bench.Case("logreg", LogReg(2), arrays, schedule, 1, 1)
    assert bench.flops_per_model(logreg) == 2 * 4 * 8 + 3 * 12 * 4
    # forward 2 d h + 2 h = 12 + 6; a step: 3 x 18 - 12 (the first layer's input gradient) per example
    mlp = bench.Case("mlp", MLP(2, 3, 0.0), arrays, schedule, 1, 1)
    assert bench.flops_per_model(mlp) == 2 * 4 * (3 * 18 - 12) + 3 * 12 * 18
    assert bench.gemm_gflops(torch.device("cpu"), size=64, repeats=2) > 0
