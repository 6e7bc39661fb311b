"""Names skinml gives in MLflow, once for every writer and reader: the metrics of each split and the headline set of a
parent run, the tags on runs and registered versions (`skinml.*`) and the artifacts runs carry.

docs/mlflow.md says what each means; tests/unit/test_mlflow_names.py holds the two to each other. Tags carry what
is not a model figure: bookkeeping, timings, counts, where the data came from.
"""

import re

# Metrics. A figure of a split is `<split>_<figure>` (`test_macro_auc`), of one class `<split>_<figure>/<class>`
# (`test_recall/mel`: MLflow's charts group a prefix), its 95% interval `<split>_<figure>_ci95_<low|high>[/<class>]`;
# an operating point's figures `<split>_<point>_<figure>` (`test_sens90_ppv`), the deferral's `<split>_defer_<figure>`.
# An evaluation of an external set (`skinml evaluate --data-dir`) logs its figures as `test_*`.
TRAIN, VAL, TEST = "train", "val", "test"
EPOCH_FIGURES = ("loss", "accuracy", "balanced_accuracy")  # per epoch, train and validation; validation adds macro_auc
ADJUSTED = "adjusted_"  # a validation figure of the temperature-scaled model: `val_adjusted_ece`
TEMPERATURE_METRIC = "temperature"
# Familiarity (skinml.evaluation.familiarity): a train run's threshold; a scored set's share of images flagged
# unfamiliar `<split>_unfamiliar_share`, and its figures on the familiar images alone `<split>_familiar_<figure>` and
# on the flagged ones `<split>_unfamiliar_<figure>`
FAMILIARITY_THRESHOLD_METRIC = "familiarity_threshold"
UNFAMILIAR_SHARE = "unfamiliar_share"
FAMILIAR, UNFAMILIAR = "familiar", "unfamiliar"
FAMILIARITY_FIGURES = ("balanced_accuracy", "macro_auc", "accuracy")


def class_key(name: str) -> str:
    """A class name as MLflow accepts it in a metric name (letters, digits, _ - . / and spaces; others become _)."""
    return re.sub(r"[^0-9A-Za-z_\-. ]", "_", name)


def metric_name(split: str, figure: str, label: str = "") -> str:
    """`test_recall/mel` for split `test`, figure `recall`, class `mel`; `test_ece` without a class."""
    return f"{split}_{figure}" + (f"/{class_key(label)}" if label else "")


def interval_name(split: str, figure: str, end: str, label: str = "") -> str:
    """`test_balanced_accuracy_ci95_low`, `test_recall_ci95_high/mel`: a bound (`low`, `high`) of a figure's 95%
    interval."""
    return metric_name(split, f"{figure}_ci95_{end}", label)


def decision_name(split: str, point: str, figure: str) -> str:
    """`val_sens90_threshold`, `test_sens90_ppv`, `test_defer_coverage`: a figure of an operating point (or `defer`)."""
    return metric_name(split, f"{point}_{figure}")


def point_name(target_sensitivity: float) -> str:
    """An operating point's name in metric names: `sens90` for target sensitivity 0.90, `sens92.5` for 0.925."""
    return f"sens{round(target_sensitivity * 100, 1):g}"


DEFER = "defer"  # the deferral's figures: `<split>_defer_confidence`, `_coverage`, `_balanced_accuracy`


# A promote run's: both models' balanced accuracy on the champion's test split, the challenger's gain and its interval
PROMOTE_METRICS = (
    "champion_balanced_accuracy",
    "challenger_balanced_accuracy",
    "balanced_accuracy_gain",
    "balanced_accuracy_gain_ci95_low",
    "balanced_accuracy_gain_ci95_high",
)
# A sweep run's: the best trial's value of the sweep's metric, and its parameters as `best_<parameter>`
BEST_VALUE_METRIC = "best_value"
BEST_PARAMETER_PREFIX = "best_"

# The headline figures: what a parent run (pipeline, retrain, sweep) carries of its challenger, with the names its
# evaluate and train runs give them (one name per figure), and per-class test recall `test_recall/<class>`
HEADLINE_TEST = tuple(metric_name(TEST, figure) for figure in ("balanced_accuracy", "macro_auc", "ece", "macro_f1"))
HEADLINE_VAL = tuple(metric_name(VAL, figure) for figure in ("balanced_accuracy", "macro_auc"))  # the last epoch's
HEADLINE_RECALL = "recall"  # and per class, on test

# Every run: which stage it is, the process that opened it, and why it was closed if its process died
STAGE_TAG = "skinml.stage"
HOST_TAG = "skinml.host"
PID_TAG = "skinml.pid"
CLOSED_BECAUSE_TAG = "skinml.closed_because"

# The data and its split (train and split runs)
CLASSES_TAG = "skinml.classes"
DATA_FORMAT_TAG = "skinml.data_format"
GROUPED_BY_TAG = "skinml.grouped_by"
SPLIT_GROUPED_BY_TAG = "skinml.split_grouped_by"
LABEL_MAP_DROPPED_TAG = "skinml.label_map_dropped"
DATA_NOTES_TAG = "skinml.data_notes"
MANIFEST_SHA256_TAG = "skinml.manifest_sha256"
SPLIT_TAG_PREFIX = "skinml.split_"  # + n_train, n_val, n_test, lesions_crossing_splits
SPLIT_COUNTS = ("n_train", "n_val", "n_test", "lesions_crossing_splits")
TEST_SPLIT_FROM_RUN_TAG = "skinml.test_split_from_run"
AUDIT_RUN_ID_TAG = "skinml.audit_run_id"  # on a pipeline's split run: the audit run of its data
DUPLICATE_GROUPS_TAG = "skinml.duplicate_groups"  # on a split run: the groups the duplicates joined
AUDIT_SECONDS_TAG = "skinml.audit_seconds"  # an audit run's time

# Training: where the frozen backbone ran, timings and memory
BACKBONE_ENGINE_TAG = "skinml.backbone_engine"
BACKBONE_PRECISION_TAG = "skinml.backbone_precision"
FEATURE_SECONDS_TAG = "skinml.feature_seconds"
TRAIN_SECONDS_TAG = "skinml.train_seconds"
PEAK_RSS_MB_TAG = "skinml.peak_rss_mb"

# Evaluation: the model, the set it was scored on, and what was left out
MODEL_URI_TAG = "skinml.model_uri"
N_IMAGES_TAG = "skinml.n_images"
EVAL_DATA_TAG = "skinml.eval_data"
EVAL_SPLIT_TAG = "skinml.eval_split"
EVAL_DATA_FORMAT_TAG = "skinml.eval_data_format"
EVAL_LEFT_OUT_TAG = "skinml.eval_left_out"
MANIFEST_RUN_ID_TAG = "skinml.manifest_run_id"
LESIONS_CROSSING_SPLITS_TAG = "skinml.lesions_crossing_splits"

# Registry, parent runs and the compare view
PROMOTED_TAG = "skinml.promoted"
TRAIN_RUN_ID_TAG = "skinml.train_run_id"
CHAMPION_MARK = "★ "  # the start of the champion's top run's name
CHAMPION_TAG = "skinml.champion"  # "yes" on the runs of the version holding the champion alias
FIGURES_TAG = "skinml.test_figures"  # the test figures to 3 decimals (the compare view shows 2)
DIGEST_TAG = "skinml.files_sha256"  # on a registered version: the digest of its files (skinml.serving.integrity)

# A registered version's own tags (beside skinml.files_sha256 and its test figures `test_*`), written and read by
# skinml.registry.versions; MLflow's UI lists them on the version's page
VERSION_RUN_ID = "run_id"
VERSION_DATA_DIR = "data_dir"
VERSION_CLASSES = "classes"
VERSION_MANIFEST_SHA256 = "manifest_sha256"
VERSION_DATA_FINGERPRINT = "data_fingerprint"  # the manifest's images and labels without their split
VERSION_DECISIONS = "decisions"
VERSION_FAMILIARITY = "familiarity"  # the share of test images flagged unfamiliar and the figures without them
VERSION_PROMOTION = "promotion_decision"

# Sweeps
STUDY_TAG = "skinml.study"
N_COMPLETE_TRIALS_TAG = "skinml.n_complete_trials"
N_PRUNED_TRIALS_TAG = "skinml.n_pruned_trials"


# A logged model's MLmodel metadata: the decisions it ships with (its classes: skinml.core.labels.METADATA_KEY)
DECISIONS_KEY = "skinml_decisions"
FAMILIARITY_KEY = "skinml_familiarity"  # what the model keeps to score familiarity: method, threshold, reference size

# An audit run's counts (skinml.audit.findings.Audit.counts); an evaluation of an external set's leaks: the images
# duplicating a training image, and the test figures without them `test_without_leaks_<figure>`
AUDIT_METRICS = (
    "images",
    "exact_duplicate_pairs",
    "near_duplicate_pairs",
    "duplicate_pairs_across_labels",
    "groups",
    "groups_of_several_images",
    "largest_group",
    "missed_duplicate_pairs",
    "label_suspects",
)
LEAKED_IMAGES_METRIC = "leaked_images"
WITHOUT_LEAKS = "without_leaks"

# Artifacts: the train run's, the evaluate run's, the promote and sweep runs'
CONFIG_ARTIFACT = "config.json"  # the whole recipe (TrainConfig.to_dict): what retraining reads back
MANIFEST_ARTIFACT = "split/manifest.csv"
TRAINING_CURVES_ARTIFACT = "plots/training_curves.png"
CONFUSION_MATRIX_ARTIFACT = "plots/confusion_matrix.png"
ROC_CURVES_ARTIFACT = "plots/roc_curves.png"
RELIABILITY_ARTIFACT = "plots/reliability_diagram.png"
SLICES_PLOT_ARTIFACT = "plots/slices.png"
GRAD_CAM_ARTIFACT = "plots/grad_cam.jpg"  # photographs: a JPEG is 1/6 the size and 1/4 the time of a PNG
OPERATING_POINTS_ARTIFACT = "plots/operating_points.png"
DEFERRAL_ARTIFACT = "plots/deferral.png"
SLICES_ARTIFACT = "report/slices.csv"
REPORT_ARTIFACT = "report/classification_report.txt"
METRICS_ARTIFACT = "report/metrics.json"
PREDICTIONS_ARTIFACT = "report/predictions.csv"  # each image's probabilities: what promotion compares
PROMOTION_ARTIFACT = "promotion.json"
SWEEP_SUMMARY_ARTIFACT = "sweep/summary.json"
AUDIT_PAGE_ARTIFACT = "audit/audit.html"  # the audit run's page and its findings
AUDIT_DUPLICATES_ARTIFACT = "audit/duplicates.csv"
AUDIT_MISSED_ARTIFACT = "audit/missed_duplicates.csv"
AUDIT_GROUPS_ARTIFACT = "audit/groups.csv"
AUDIT_SUSPECTS_ARTIFACT = "audit/label_suspects.csv"
LEAKS_ARTIFACT = "report/leaks.csv"  # an evaluation of an external set: its images duplicating training images


def all_tags() -> set[str]:
    """Every tag name above, the split counts spelled out."""
    names = {value for key, value in globals().items() if key.endswith("_TAG") and isinstance(value, str)}
    return names | {SPLIT_TAG_PREFIX + count for count in SPLIT_COUNTS}


def all_artifacts() -> set[str]:
    """Every artifact path above."""
    return {value for key, value in globals().items() if key.endswith("_ARTIFACT") and isinstance(value, str)}


def version_tags() -> set[str]:
    """A registered version's own tag names above."""
    return {value for key, value in globals().items() if key.startswith("VERSION_") and isinstance(value, str)}
