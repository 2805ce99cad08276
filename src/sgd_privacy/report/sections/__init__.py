"""The report's sections, in the studies' order: each declares the table kinds it reads and renders
its figures, tables and comparisons with the studies from DataFrames.

Table kinds (the report rule's named inputs) and where they come from:

- `dataset_meta`: results/data/{dataset}.json; `runs`, `convergence`: results/train/{exp}/...
- `distances_over_t`, `distances_at_T`, `epsilon`, `sigma_per_dataset`, `stability`,
  `distribution_tests`, `nonnormal_weights`, `umap`, `kmeans_spans`: results/analysis/{exp}/...
- `mia_table6`, `mia_attacks`, `mia_bounds`: the membership-inference stage per attacked experiment
  (results/mia/{exp}/table6, attacks and epsilon_bounds.parquet); `lira_summary`, `lira_roc`,
  `lira_bounds`: LiRA (results/lira/{exp}/summary, roc and epsilon_bounds.parquet).
- `hz_power`: the Henze-Zirkler power simulation (results/analysis/hz_power.parquet).
- `dp_summary`, `dp_sweeps`, `dp_outliers`, `ledger`: the DP-SGD / SAM stage (results/dp/summary,
  sweeps, outliers and ledger.parquet).
- `bolt_on`, `query_attack`: the output-perturbation stage (results/perturbation/{exp}/...).

The columns each part needs are named in its docstring; a missing one is reported by name.
"""

from __future__ import annotations

from .. import study_values as sv
from ..blocks import Section
from .dp import dg_study_parts, dp_epoch_parts, dp_sweep_parts, ledger_parts, outlier_parts
from .intrinsic import (
    data_tables,
    distance_figures,
    distribution_parts,
    epsilon_parts,
    grid_tables,
    hz_power_parts,
    kmeans_tables,
    nonnormal_figure,
    sigma_range_parts,
    stability_figure,
    umap_figures,
)
from .mia import bounds_parts, mia_figure, mia_parts, roc_parts
from .perturbation import output_perturbation_parts, repeated_query_parts

INTRINSIC = sv.INTRINSIC
SECTIONS: tuple[Section, ...] = (
    Section(
        "data",
        "Data and training grid",
        INTRINSIC,
        ("dataset_meta", "runs", "convergence"),
        "data, training",
        (data_tables, grid_tables),
    ),
    Section(
        "distances",
        "Seed variability against data sensitivity",
        INTRINSIC,
        ("distances_over_t", "distances_at_T"),
        "distances",
        (distance_figures,),
    ),
    Section(
        "embedding",
        "UMAP and k-means of the weights",
        INTRINSIC,
        ("umap", "kmeans_spans"),
        "weight_embedding",
        (umap_figures, kmeans_tables),
    ),
    Section(
        "distribution",
        "Shape of the weight distribution",
        INTRINSIC,
        ("distribution_tests", "nonnormal_weights", "hz_power"),
        "distribution_tests",
        (distribution_parts, nonnormal_figure, hz_power_parts),
    ),
    Section(
        "epsilon",
        "Intrinsic epsilon and its stability",
        INTRINSIC,
        ("epsilon", "sigma_per_dataset", "stability"),
        "intrinsic_epsilon",
        (epsilon_parts, sigma_range_parts, stability_figure),
    ),
    Section(
        "mia",
        "Membership inference: seed known vs hidden",
        INTRINSIC,
        ("mia_table6", "mia_attacks", "mia_bounds", "lira_summary", "lira_roc", "lira_bounds"),
        "membership inference",
        (mia_parts, mia_figure, roc_parts, bounds_parts),
    ),
    Section(
        "dp",
        "DP-SGD and SAM: privacy against utility",
        "DP vs generalisation against MIA; DP-SGD lab report",
        ("dp_summary", "dp_sweeps", "dp_outliers"),
        "DP-SGD / SAM",
        (dp_epoch_parts, dg_study_parts, dp_sweep_parts, outlier_parts),
    ),
    Section(
        "output_perturbation",
        "Output perturbation and repeated queries",
        "Output noise vs DP-SGD",
        ("bolt_on", "query_attack"),
        "output perturbation",
        (output_perturbation_parts, repeated_query_parts),
    ),
    Section(
        "ledger", "Privacy ledger", "DP vs generalisation against MIA", ("ledger",), "privacy ledger", (ledger_parts,)
    ),
)


def section_kinds() -> dict[str, tuple[str, ...]]:
    """Every section's table kinds, by section key."""
    return {s.key: tuple(s.kinds) for s in SECTIONS}
