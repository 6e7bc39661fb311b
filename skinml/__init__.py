"""skinml: train, track, tune, register and serve skin-lesion classifiers on HAM10000."""

CLASSES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
"""The 7 HAM10000 diagnostic classes, in the order used everywhere (model outputs, plots, reports)."""

__version__ = "0.1.0"
