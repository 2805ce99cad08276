"""A noisy prediction API and the attackers who average its answers (docs/methods.md, section 9).

The API returns a model's score (logit) plus Gaussian noise, either fresh for every query or
fixed per input (drawn from a hash of the input's bytes, so repeating a query returns the same
answer). One attacker repeats the target query k times and averages; another averages the
answers for k nearby inputs (the target plus small random perturbations), which defeats noise
fixed per input because every perturbed input hashes to its own noise. A model trained with
DP-SGD answers deterministically: its guarantee covers every use of the released model.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .. import rng
from ..attacks.metrics import auc, max_advantage, p_err_floor
from ..data.neighbours import neighbour_index

MODES = ("fresh", "fixed")
ATTACKS = ("repeat", "nearby")
Scorer = Callable[[np.ndarray], np.ndarray]


def input_keys(x: np.ndarray) -> torch.Tensor:
    """A 32-bit key per input row: BLAKE2b of its float64 bytes."""
    rows = np.ascontiguousarray(np.asarray(x, dtype=np.float64).reshape(len(x), -1))
    keys = [int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=4).digest(), "little") for r in rows]
    return torch.tensor(keys, dtype=torch.int64)


def fixed_noise(x: np.ndarray, seed: int) -> np.ndarray:
    """Standard normal noise that is a pure function of (seed, input bytes)."""
    return rng.normal(seed, rng.Purpose.QUERY_NOISE, input_keys(x), torch.zeros(len(x), dtype=torch.int64)).numpy()


def answer(scorer: Scorer, x: np.ndarray, mode: str, scale: float, seed: int, fresh: np.random.Generator) -> np.ndarray:
    """The API's answers for inputs x: true scores plus scale * noise, fresh per query or fixed per input."""
    scores = scorer(x)
    if mode == "fresh":
        return scores + scale * fresh.standard_normal(len(x))
    if mode == "fixed":
        return scores + scale * fixed_noise(x, seed)
    raise ValueError(f"unknown noise mode {mode!r}; expected one of {MODES}")


def averaged_estimates(
    scorer: Scorer,
    targets: np.ndarray,
    ks: Sequence[int],
    mode: str,
    attack: str,
    scale: float,
    radius: float,
    seed: int,
    attacker_seed: int,
    chunk: int = 16,
) -> np.ndarray:
    """The attacker's estimates (len(ks), targets) of each target's score: the mean of its first k answers,
    to the same input repeated (`repeat`) or to the target plus N(0, radius^2 I) perturbations (`nearby`)."""
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; expected one of {ATTACKS}")
    k_max, ks_arr = max(ks), np.asarray(ks, dtype=np.int64)
    api_rng = np.random.default_rng([seed, 1])
    attacker = np.random.default_rng([attacker_seed, 2])
    out = np.empty((len(ks_arr), len(targets)))
    for start in range(0, len(targets), chunk):
        x = np.asarray(targets[start : start + chunk], dtype=np.float64)
        queries = np.repeat(x[:, None, :], k_max, axis=1)
        if attack == "nearby":
            queries = queries + radius * attacker.standard_normal(queries.shape)
        answers = answer(scorer, queries.reshape(-1, x.shape[1]), mode, scale, seed, api_rng).reshape(len(x), k_max)
        means = np.cumsum(answers, axis=1) / np.arange(1, k_max + 1)
        out[:, start : start + len(x)] = means[:, ks_arr - 1].T
    return out


def logistic_loss(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-example logistic loss of logits for labels in {0, 1} (broadcast over leading axes)."""
    signed = np.where(np.asarray(labels) == 1, 1.0, -1.0) * np.asarray(scores, dtype=np.float64)
    return np.logaddexp(0.0, -signed)


def membership(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> dict[str, float]:
    """Loss-threshold attack strength on attack scores (-loss): best-threshold advantage, AUC, and the p-value of
    the advantage under "no membership signal" (the best-threshold advantage is the two-sample KS statistic)."""
    return {
        "advantage": max_advantage(member_scores, nonmember_scores),
        "auc": float(auc(member_scores, nonmember_scores)),
        "advantage_p_value": float(stats.ks_2samp(member_scores, nonmember_scores).pvalue),
    }


def attack_table(
    scorer: Scorer,
    members: tuple[np.ndarray, np.ndarray],
    nonmembers: tuple[np.ndarray, np.ndarray],
    ks: Sequence[int],
    scale: float,
    radius: float,
    seed: int,
) -> pd.DataFrame:
    """Per noise mode, attack and k: the attacker's RMSE in recovering the true scores and the membership
    advantage/AUC of a loss-threshold attack on the recovered scores; `exact` rows are the noiseless ceiling."""
    x = np.concatenate([members[0], nonmembers[0]])
    y = np.concatenate([members[1], nonmembers[1]])
    n_m = len(members[0])
    true = scorer(x)
    ceiling = membership(-logistic_loss(true[:n_m], y[:n_m]), -logistic_loss(true[n_m:], y[n_m:]))
    rows = [{"api": "exact", "attack": "none", "k": int(k), "rmse": 0.0, **ceiling} for k in ks]
    for mode in MODES:
        for attack in ATTACKS:
            est = averaged_estimates(scorer, x, ks, mode, attack, scale, radius, seed, seed + 1)
            loss = logistic_loss(est, y[None, :])
            for k, e, lo in zip(ks, est, loss, strict=True):
                rows.append(
                    {
                        "api": mode,
                        "attack": attack,
                        "k": int(k),
                        "rmse": float(np.sqrt(np.mean((e - true) ** 2))),
                        **membership(-lo[:n_m], -lo[n_m:]),
                    }
                )
    frame = pd.DataFrame(rows)
    frame["query_noise"] = scale
    frame["n_members"], frame["n_nonmembers"] = n_m, len(x) - n_m
    return frame


def logreg_scorer(weights: np.ndarray) -> Scorer:
    """Scores (logits) of one logistic regression with weights (d + 1,), bias last."""
    w = np.asarray(weights, dtype=np.float64)
    return lambda x: np.asarray(x, dtype=np.float64) @ w[:-1] + w[-1]


def train_dp_logreg(
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    batch_size: int,
    lr: float,
    noise_multiplier: float,
    max_grad_norm: float,
    delta: float,
    seed: int,
) -> tuple[np.ndarray, float]:
    """A plain torch logistic regression trained with DP-SGD through the DP stage's Opacus wrapper
    (`sgd_privacy.dp.train.make_private`: per-example clipping, Gaussian noise, Poisson sampling, RDP);
    returns its weights (d + 1,), bias last, and the accountant's epsilon at `delta`. Every Poisson batch, an
    empty one included, is one update (`sgd_privacy.dp.train.train_step`) and one booked step."""
    weights, accounting = train_dp_logreg_accounted(
        x, y, epochs, batch_size, lr, noise_multiplier, max_grad_norm, delta, seed
    )
    return weights, accounting["dp_epsilon"]


def train_dp_logreg_accounted(
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    batch_size: int,
    lr: float,
    noise_multiplier: float,
    max_grad_norm: float,
    delta: float,
    seed: int,
) -> tuple[np.ndarray, dict[str, float]]:
    """`train_dp_logreg` with what its accountant booked (for the privacy ledger): dp_epsilon at `delta`,
    dp_noise_multiplier (of each booked step), dp_sample_rate and dp_accounted_steps."""
    from ..dp.train import make_private, train_step

    conf = {
        "algorithm": "dpsgd",
        "noise_multiplier": noise_multiplier,
        "max_grad_norm": max_grad_norm,
        "epochs": epochs,
    }
    with torch.random.fork_rng(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off")  # reproducible noise is the point here
        warnings.filterwarnings("ignore", message="Full backward hook is firing")  # inputs need no gradient
        torch.manual_seed(seed)
        data = torch.utils.data.TensorDataset(
            torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
        )
        loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True)
        linear = torch.nn.Linear(x.shape[1], 1)
        model, optimizer, loader, privacy = make_private(
            linear, torch.optim.SGD(linear.parameters(), lr=lr), loader, conf, delta
        )
        bce = torch.nn.BCEWithLogitsLoss()

        def loss_fn(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return bce(out.squeeze(-1), target)

        for _ in range(epochs):
            for xb, yb in loader:  # an empty Poisson batch is a step too: noise alone, booked (no skip)
                train_step(model, optimizer, xb, yb, conf, loss_fn)
    weights = torch.cat([linear.weight.detach().reshape(-1), linear.bias.detach()]).double().numpy()
    accounting = {
        "dp_epsilon": privacy.epsilon(delta),
        "dp_noise_multiplier": float(privacy.accounted_noise_multiplier),
        "dp_sample_rate": float(privacy.sample_rate),
        "dp_accounted_steps": float(privacy.steps()),
    }
    return weights, accounting


def dp_table(
    weights: np.ndarray,
    epsilon: float,
    delta: float,
    members: tuple[np.ndarray, np.ndarray],
    nonmembers: tuple[np.ndarray, np.ndarray],
    ks: Sequence[int],
) -> pd.DataFrame:
    """The DP-SGD model behind the same API: answers are its exact scores (deterministic post-processing),
    so the attacker recovers them at every k and the advantage stays under the (epsilon, delta) ceiling."""
    scorer = logreg_scorer(weights)
    n_m = len(members[0])
    x = np.concatenate([members[0], nonmembers[0]])
    y = np.concatenate([members[1], nonmembers[1]])
    true = scorer(x)
    est = averaged_estimates(scorer, x, ks, "fixed", "repeat", 0.0, 0.0, 0, 0)
    rows = []
    for k, e in zip(ks, est, strict=True):
        lo = logistic_loss(e, y)
        rmse = float(np.sqrt(np.mean((e - true) ** 2)))
        rows.append(
            {"api": "dp_sgd", "attack": "repeat", "k": int(k), "rmse": rmse, **membership(-lo[:n_m], -lo[n_m:])}
        )
    frame = pd.DataFrame(rows)
    frame["dp_epsilon"], frame["dp_delta"] = epsilon, delta
    frame["advantage_bound"] = float(1.0 - 2.0 * p_err_floor(epsilon, delta)) if math.isfinite(epsilon) else 1.0
    frame["n_members"], frame["n_nonmembers"] = n_m, len(y) - n_m
    return frame


def attack_sets(
    n_train: int, replace_index: int, arrays: dict[str, np.ndarray], n_each: int, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Members (n_each rows of D_i), non-members (n_each test rows), and D_i's base-set rows."""
    train_rows = neighbour_index(n_train, replace_index)
    n = min(n_each, len(train_rows), len(arrays["x_test"]))
    gen = np.random.default_rng([seed, 3])
    m = gen.choice(train_rows, n, replace=False)
    t = gen.choice(len(arrays["x_test"]), n, replace=False)
    x_tr, y_tr, x_te, y_te = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    return (x_tr[m], y_tr[m]), (x_te[t], y_te[t]), train_rows


def query_tables(
    runs: pd.DataFrame, weights: np.ndarray, arrays: dict[str, np.ndarray], delta: float, settings: dict
) -> pd.DataFrame:
    """The repeated-query experiment on one trained run (the first non-diverged variable-init run) and on a
    DP-SGD model trained on the same D_i, in one table (api: exact, fresh, fixed, dp_sgd)."""
    live = runs.assign(row=np.arange(len(runs)))
    live = live[(live["init"] == "variable") & ~live["diverged"]].sort_values(["seed", "replace_index"])
    if len(live) == 0:
        raise ValueError("the query experiment needs a non-diverged variable-init run")
    target = live.iloc[0]
    members, nonmembers, train_rows = attack_sets(
        len(arrays["x_train"]), int(target["replace_index"]), arrays, settings["attack_examples"], settings["seed"]
    )
    ks = settings["k_values"]
    api = attack_table(
        logreg_scorer(weights[int(target["row"])]),
        members,
        nonmembers,
        ks,
        settings["query_noise"],
        settings["nearby_radius"],
        settings["seed"],
    )
    dp = settings["dp_sgd"]
    dp_weights, accounting = train_dp_logreg_accounted(
        arrays["x_train"][train_rows],
        arrays["y_train"][train_rows],
        dp["epochs"],
        dp["batch_size"],
        dp["lr"],
        dp["noise_multiplier"],
        dp["max_grad_norm"],
        delta,
        settings["seed"],
    )
    dp_rows = dp_table(dp_weights, accounting["dp_epsilon"], delta, members, nonmembers, ks)
    # what the accountant booked, for the privacy ledger (`sgd_privacy.dp.ledger.query_stage_runs`)
    for key in ("dp_noise_multiplier", "dp_sample_rate", "dp_accounted_steps"):
        dp_rows[key] = accounting[key]
    table = pd.concat([api, dp_rows], ignore_index=True)
    table.insert(0, "experiment", str(runs["experiment"].iloc[0]))
    table.insert(1, "target_seed", int(target["seed"]))
    table.insert(2, "target_replace_index", int(target["replace_index"]))
    table["nearby_radius"] = settings["nearby_radius"]
    return table
