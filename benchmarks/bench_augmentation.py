"""Validation quality of the baseline head trained from K cached augmented views per training image (K = 0 means
the plain image, no augmentation), to choose the default K. On-the-fly augmentation (backbone in the loop) is the
`plain Keras` row of bench_training.py. See docs/benchmarks.md.

    python benchmarks/bench_augmentation.py --data-dir ../shared/data/ham10000 \
        --weights ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5
"""

from __future__ import annotations

import json
import logging
import statistics
import time

import keras
import numpy as np
from arguments import (
    benchmark_parser,  # benchmarks/ is on sys.path when a script in it runs
)

from skinml.core.recipe import TrainConfig
from skinml.data.dataset import HAM10000_CLASSES as CLASSES
from skinml.data.dataset import load_dataset
from skinml.data.split import make_split
from skinml.evaluation.metrics import classification_metrics
from skinml.features.extraction import extract_features
from skinml.model.network import build_feature_extractor, build_head
from skinml.training.head import fit_head_on_features


def head_quality(
    train_views: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    config: TrainConfig,
    seeds: list[int],
) -> tuple[float, float, list[float]]:
    """The baseline head trained on features (n, views, dim) once per seed: median validation balanced accuracy,
    median macro AUC, and each seed's balanced accuracy."""
    scores, aucs = [], []
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        head = build_head(train_views.shape[-1], 7, config.dropout, seed)
        fit_head_on_features(head, train_views, train_y, config.replace(seed=seed), callbacks=[])
        metrics = classification_metrics(val_y, np.asarray(head.predict(val_x, batch_size=512, verbose=0)), CLASSES)
        scores.append(metrics["balanced_accuracy"])
        aucs.append(metrics["macro_auc"])
    return statistics.median(scores), statistics.median(aucs), scores


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--views", default="0,2,4,8", help="values of K to compare")
    parser.add_argument("--seeds", default="1,2,3", help="training seeds per K (the median is reported)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    config = TrainConfig(weights=args.weights)
    frame = load_dataset(args.data_dir)
    data = make_split(frame, seed=config.seed).merge(frame[["image_id", "path"]], on="image_id")
    train, val = data[data["split"] == "train"], data[data["split"] == "val"]
    ks = [int(k) for k in args.views.split(",")]
    extractor = build_feature_extractor(config.image_size, config.weights)
    started = time.perf_counter()
    views = list(range(0, max(ks) + 1))
    train_x = extract_features(extractor, train["path"].tolist(), views, config.augment, config.seed).load()
    val_x = extract_features(extractor, val["path"].tolist(), [0], config.augment, config.seed).load()[:, 0]
    print(f"features ready in {time.perf_counter() - started:.0f} s", flush=True)
    train_y, val_y = train["dx"].map(CLASSES.index).to_numpy(), val["dx"].map(CLASSES.index).to_numpy()

    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"\n{'K cached views':<16}{'val bal acc (median)':>22}{'val macro AUC':>15}{'all seeds':>28}")
    for k in ks:
        chosen = [0] if k == 0 else list(range(1, k + 1))
        score, auc, scores = head_quality(train_x[:, chosen], train_y, val_x, val_y, config, seeds)
        label = "0 (no aug.)" if k == 0 else str(k)
        print(f"{label:<16}{score:>22.3f}{auc:>15.3f}{json.dumps([round(s, 3) for s in scores]):>28}", flush=True)


if __name__ == "__main__":
    main()
