"""Data: sources (download, local copy, ISIC 2018 one-hot sets), validation, split, tf.data loading, synthetic data."""

from skinml.data.dataset import DataValidationError, load_dataset

__all__ = ["DataValidationError", "load_dataset"]
