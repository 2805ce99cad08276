"""One job of the DP study: a (configuration, repeat) trained with every epoch attacked; and the shadow stage."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..attacks.metrics import p_err_floor
from ..attacks.shadow import ATTACKS, confidence_features, evaluate_attacks, fit_attack
from ..train.checkpoint import digest, fingerprint
from .train import Privacy, RunCheckpoint, Tables, predict, run_seed, study_split, train_run


def _tensors(arrays: dict[str, np.ndarray], split: str, rows: np.ndarray, device: str) -> tuple[torch.Tensor, ...]:
    x = torch.as_tensor(arrays[f"x_{split}"][rows], dtype=torch.float32, device=device)
    return x, torch.as_tensor(arrays[f"y_{split}"][rows], dtype=torch.int64, device=device)


def data_digest(arrays: dict[str, np.ndarray]) -> str:
    """sha256 of a dataset's arrays (names, dtypes, shapes and bytes), for checkpoint keys."""
    return fingerprint({name: digest(arrays[name]) for name in sorted(arrays)})


def n_classes_of(arrays: dict[str, np.ndarray]) -> int:
    """Number of classes (largest label + 1 over training and test rows)."""
    return int(max(arrays["y_train"].max(), arrays["y_test"].max()) + 1)


def shadow_features(
    arch: dict,
    shadow: dict,
    arrays: dict[str, np.ndarray],
    split_seed: int,
    dataset: str,
    device: str = "cpu",
    split_sizes: dict | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_s: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Train the shadow model (plain SGD, the target's architecture) on the shadow rows of the split (`study_split`
    with `split_sizes`) and return its sorted confidence vectors: one row per shadow example with `member`, `y`
    and p1..pK (decreasing). With a `checkpoint` path, training resumes from a checkpoint made there under the
    same settings and saves one every `checkpoint_s` seconds (see `train_run`); the caller deletes it."""
    split = study_split(arrays["y_train"], arrays["y_test"], split_seed, split_sizes, dataset)
    x, y = _tensors(arrays, "train", split.shadow_members, device)
    xo, yo = _tensors(arrays, split.shadow_nonmembers_from, split.shadow_nonmembers, device)
    conf = {
        **arch,
        "dataset": dataset,
        "algorithm": "sgd",
        "dropout": 0.0,
        "l2": 0.0,
        **{k: shadow[k] for k in ("epochs", "batch_size", "lr", "momentum")},
    }
    out: dict[str, nn.Module] = {}

    def keep(epoch: int, model: nn.Module, privacy: Privacy) -> None:
        out["model"] = model

    saves = None
    if checkpoint is not None:
        record = {"job": "dp_shadow", "conf": conf, "seed": shadow["seed"], "split_seed": split_seed}
        record |= {"split": split_sizes, "data": data_digest(arrays), "device": torch.device(device).type}
        saves = RunCheckpoint(Path(checkpoint), fingerprint(record), checkpoint_s, progress=progress)
    train_run(conf, "shadow", x, y, n_classes_of(arrays), shadow["seed"], 1.0, keep, saves)
    frames = []
    for member, (xs, ys) in ((True, (x, y)), (False, (xo, yo))):
        pred = predict(out["model"], xs, ys)
        feats = confidence_features(pred["probs"], pred["probs"].shape[1])
        frame = pd.DataFrame(feats, columns=[f"p{i + 1}" for i in range(feats.shape[1])])
        frame.insert(0, "y", pred["y"])
        frame.insert(0, "member", member)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def run_job(
    name: str,
    conf: dict,
    repeat: int,
    arrays: dict[str, np.ndarray],
    shadow: pd.DataFrame,
    settings: dict,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_s: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train repeat `repeat` of configuration `name` and attack it after every epoch.

    `settings` holds delta, split_seed, optionally `split` (the dataset's split sizes, see `study_split`) and the
    attack's top_k, hidden, epochs and lr. Train accuracy and loss are over all members, test accuracy and loss
    over the non-members; the attacks score the challenge members against the non-members. Returns the
    per-epoch table (one row per epoch and attack: utility, attack metrics, accountant epsilon and the
    P_err floor, and what the accountant booked: `accounted_steps` batches, each one sampled Gaussian
    step at `accounted_noise_multiplier` = noise_multiplier / sqrt(releases_per_step)) and the per-example
    table (whether each attack identified each member/non-member). With a `checkpoint` path, training resumes
    from a checkpoint made there under the same settings (the tables of the epochs done included) and saves
    one every `checkpoint_s` seconds (see `train_run`); the caller deletes it."""
    split = study_split(
        arrays["y_train"], arrays["y_test"], settings["split_seed"], settings.get("split"), conf["dataset"]
    )
    x, y = _tensors(arrays, "train", split.members, device)
    xo, yo = _tensors(arrays, "test", split.nonmembers, device)
    seed = run_seed(conf["seed"], repeat)
    k = settings["attack"]["top_k"]
    pcols = [c for c in shadow.columns if c.startswith("p")][:k]  # p1..pK, largest first
    attack = fit_attack(
        shadow.loc[shadow["member"], pcols].to_numpy(),
        shadow.loc[~shadow["member"], pcols].to_numpy(),
        settings["attack"]["hidden"],
        settings["attack"]["epochs"],
        settings["attack"]["lr"],
        seed,
    )
    delta = settings["delta"]
    rows: list[dict] = []
    examples: list[pd.DataFrame] = []

    def on_epoch(epoch: int, model: nn.Module, privacy: Privacy) -> None:
        mem, non = predict(model, x, y), predict(model, xo, yo)
        challenged = (
            mem if len(split.challenge) == len(split.members) else {c: v[split.challenge] for c, v in mem.items()}
        )
        metrics, identified = evaluate_attacks(challenged, non, attack, k)
        eps = privacy.epsilon(delta)
        base = {
            "configuration": name,
            "repeat": repeat,
            "epoch": epoch,
            "dataset": conf["dataset"],
            "algorithm": conf["algorithm"],
            "test_accuracy": float((non["probs"].argmax(1) == non["y"]).mean()),
            "train_accuracy": float((mem["probs"].argmax(1) == mem["y"]).mean()),
            "train_loss": float(mem["loss"].mean()),
            "test_loss": float(non["loss"].mean()),
            "epsilon": eps,
            "delta": delta,
            "p_err_floor": float(p_err_floor(eps, delta)),
            "noise_multiplier": privacy.noise_multiplier,
            "sample_rate": privacy.sample_rate,
            "releases_per_step": privacy.releases_per_step,
            "noisy_releases": privacy.releases(),
            "accounted_noise_multiplier": privacy.accounted_noise_multiplier,
            "accounted_steps": privacy.steps(),
        }
        for attack_name in ATTACKS:
            rows.append({**base, "attack": attack_name, **metrics[attack_name]})
            for member, hit in zip((True, False), identified[attack_name], strict=True):
                examples.append(
                    pd.DataFrame(
                        {
                            "epoch": np.int32(epoch),
                            "attack": attack_name,
                            "member": member,
                            "example": np.arange(len(hit), dtype=np.int32),
                            "identified": hit,
                        }
                    )
                )
        if progress:
            m = metrics["loss_threshold"]
            progress(
                f"{name} r{repeat} epoch {epoch}: test acc {base['test_accuracy']:.3f}, "
                f"P_err {m['p_err']:.3f}, AUC {m['auc']:.3f}, epsilon {eps:.3g}"
            )

    saves = None
    if checkpoint is not None:

        def tables() -> Tables:
            return {"epochs": pd.DataFrame(rows), "examples": pd.concat(examples, ignore_index=True)}

        def restore(saved: Tables) -> None:
            rows[:] = saved["epochs"].to_dict("records")
            examples[:] = [saved["examples"]]

        record = {"job": "dp_train", "name": name, "conf": conf, "repeat": repeat, "settings": settings}
        record |= {"data": data_digest(arrays), "shadow": digest(pd.util.hash_pandas_object(shadow).to_numpy())}
        record |= {"shadow_columns": list(shadow.columns)}
        record |= {"device": torch.device(device).type}
        saves = RunCheckpoint(Path(checkpoint), fingerprint(record), checkpoint_s, tables, restore, progress)
    train_run(conf, name, x, y, n_classes_of(arrays), seed, delta, on_epoch, saves)
    table = pd.DataFrame(rows)
    per_example = pd.concat(examples, ignore_index=True)
    per_example.insert(0, "repeat", repeat)
    per_example.insert(0, "configuration", name)
    return table, per_example
