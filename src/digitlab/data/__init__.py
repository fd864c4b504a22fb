"""Datasets in the MNIST IDX format: reading, writing, validating, downloading. Knows nothing of torch."""

from .datasets import Dataset, dataset_names, default_home, load_dataset, load_folder
from .idx import DatasetError, parse_idx, read_idx, write_idx

__all__ = ["Dataset", "DatasetError", "dataset_names", "default_home", "load_dataset", "load_folder",
           "parse_idx", "read_idx", "write_idx"]
