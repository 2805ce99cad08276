"""What produced a result: the exact versions of Python and the packages the computations use."""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = (
    "torch",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "opacus",
    "pingouin",
    "numba",  # compiles the dense models' CPU step (sgd_privacy.train.fused) and umap's kernels
    "umap-learn",
    "snakemake",
)


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed version of each package ('not installed' where absent), plus Python's."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
