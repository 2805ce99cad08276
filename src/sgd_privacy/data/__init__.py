"""Datasets: raw parsers, preprocessing, the registry, and neighbouring datasets."""

from .custom import custom_files, prepare_custom
from .errors import DataError
from .neighbours import check_batch_fits, check_replace_indices, neighbour_index, neighbour_rows
from .registry import DATASETS, SourceContext, dataset_options, load_prepared, prepare_dataset, write_prepared

__all__ = [
    "DATASETS",
    "DataError",
    "SourceContext",
    "check_batch_fits",
    "check_replace_indices",
    "custom_files",
    "dataset_options",
    "load_prepared",
    "neighbour_index",
    "neighbour_rows",
    "prepare_custom",
    "prepare_dataset",
    "write_prepared",
]
