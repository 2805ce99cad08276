"""The training grid: which runs an experiment has and how shards tile them.

Shards tile (seed blocks) x (replace-index blocks) x (init mode). A shard's parameters
name its own seeds and replace-index ranks, never the grid's size, so adding seeds or
replace indices adds shards and leaves finished ones untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..data.neighbours import check_replace_indices
from ..errors import TrainingError

MODEL_KEYS = {"logreg": (), "mlp": ("hidden", "dropout"), "cnn": ("cnn_size",)}
TRAINING_KEYS = ("dataset", "model", "lr", "batch_size", "epochs", "cadence", "log_weights_at")
_SHARD = re.compile(r"^s(\d+)_r(\d+)_(variable|fixed)$")


@dataclass(frozen=True)
class Shard:
    """One training job: a seed block, a replace-index block and an init mode."""

    seed_block: int
    replace_block: int
    init: str

    @property
    def name(self) -> str:
        """The shard's file stem."""
        return f"s{self.seed_block}_r{self.replace_block}_{self.init}"

    @staticmethod
    def parse(name: str) -> Shard:
        """Inverse of `name`."""
        match = _SHARD.match(name)
        if not match:
            raise TrainingError(f"not a shard name: {name!r} (expected s<k>_r<k>_variable|fixed)")
        return Shard(int(match[1]), int(match[2]), match[3])


def seed_list(exp: dict) -> list[int]:
    """The experiment's seeds: 0..n-1 for an integer, else the given list."""
    seeds = exp["seeds"]
    return list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]


def replace_count(exp: dict) -> int:
    """How many replace indices the experiment uses."""
    r = exp["replace_indices"]
    return r if isinstance(r, int) else len(r)


def blocks(n: int, size: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of consecutive blocks of `size` covering range(n)."""
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def plan_shards(exp: dict) -> list[Shard]:
    """Every shard of an experiment."""
    n_seed = len(blocks(len(seed_list(exp)), exp["shard"]["seeds"]))
    n_rep = len(blocks(replace_count(exp), exp["shard"]["replace_indices"]))
    return [Shard(s, r, init) for init in exp["init_modes"] for s in range(n_seed) for r in range(n_rep)]


def training_slice(exp: dict, dtype: str) -> dict:
    """The settings that determine a run's weights (model-specific keys only for that model)."""
    keys = TRAINING_KEYS + MODEL_KEYS[exp["model"]]
    return {"dtype": dtype, **{k: exp[k] for k in keys}}


def architecture_slice(exp: dict) -> dict:
    """The settings that determine the parameter layout (what the fixed initialisation depends on)."""
    return {k: exp[k] for k in ("dataset", "model") + MODEL_KEYS[exp["model"]]}


def shard_spec(exp: dict, shard: Shard) -> dict:
    """Which runs a shard trains: its seeds, its replace indices (list or sampled ranks), its init mode."""
    s0, s1 = blocks(len(seed_list(exp)), exp["shard"]["seeds"])[shard.seed_block]
    r0, r1 = blocks(replace_count(exp), exp["shard"]["replace_indices"])[shard.replace_block]
    reps = exp["replace_indices"]
    replace = (
        {"list": list(reps[r0:r1])}
        if isinstance(reps, list)
        else {"sample_seed": exp["replace_seed"], "ranks": [r0, r1]}
    )
    spec = {"seeds": seed_list(exp)[s0:s1], "replace": replace, "init": shard.init}
    if shard.init == "fixed":
        spec["fixed_init_seed"] = exp["fixed_init_seed"]
    return spec


def sampled_replace_indices(n_base: int, seed: int, stop: int) -> np.ndarray:
    """The first `stop` replace indices of a reproducible ordering of 1..n_base-1 (prefix-stable)."""
    if stop > n_base - 1:
        raise TrainingError(
            f"asked for {stop} replace indices but the base set has only {n_base - 1} (1..{n_base - 1})"
        )
    import torch  # imported on use: the workflow's own process (the Snakefile imports this module) never loads it

    from ..rng import Purpose, hash32

    candidates = torch.arange(1, n_base, dtype=torch.int64)
    keys = hash32(seed, Purpose.REPLACE_INDEX, 0, candidates)
    return candidates[torch.argsort(keys)][:stop].numpy()


def resolve_replace(spec: dict, n_base: int) -> np.ndarray:
    """The concrete replace indices of a shard for a base set of n_base rows."""
    rep = spec["replace"]
    if "list" in rep:
        return check_replace_indices(rep["list"], n_base)
    r0, r1 = rep["ranks"]
    return sampled_replace_indices(n_base, rep["sample_seed"], r1)[r0:r1]


def shard_runs(spec: dict, n_base: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seeds, replace indices, fixed flags) of every run in a shard, seed-major."""
    seeds = np.asarray(spec["seeds"], dtype=np.int64)
    replace = resolve_replace(spec, n_base)
    s, r = np.meshgrid(seeds, replace, indexing="ij")
    fixed = np.full(s.size, spec["init"] == "fixed")
    return s.reshape(-1), r.reshape(-1), fixed
