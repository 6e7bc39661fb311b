"""Ablation for the `best` preset: each row is one `skinml train` command on one fixed split; it prints the
validation balanced accuracy, macro AUC and ECE of each (validation only: the test split is not looked at here).
See docs/ablation.md.

    python benchmarks/ablation.py --data-dir ../shared/data/ham10000 --manifest outputs/manifest.csv \
        --weights ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5 [--rows a,b]

Rows with a temperature fitted on validation report the logged (temperature-scaled) model's figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import statistics

from skinml.app.cli import build_parser
from skinml.app.commands import training_config

# name -> the options of `skinml train` on top of the shared ones (data dir, manifest, weights). Rows of retired options
# (class weights, label smoothing, prior adjustment, sampling, ...) run from the commit docs/ablation.md names.
ROWS: dict[str, str] = {
    "baseline": "--preset baseline",
    "temperature_scaling": "--preset baseline --temperature-scaling",
    "logit_adjusted_loss": "--preset baseline --loss logit_adjusted",
    # input resolution on the frozen backbone: plain images (no views, so every seed shares one extraction)
    **{
        f"image_size_{size}": f"--preset baseline --loss logit_adjusted --cached-views 0 --image-size {size}"
        for size in (160, 224, 288, 352, 448)
    },
    "best": "--preset best",  # block_4 with the logit-adjusted loss
}


def row_metrics(result: dict) -> dict[str, float]:
    """Validation figures of a training run: the logged model's, temperature-scaled where a temperature was fitted."""
    import mlflow

    logged = mlflow.get_run(result["run_id"]).data.metrics
    adjusted = "val_adjusted_balanced_accuracy" in logged
    prefix = "val_adjusted_" if adjusted else "val_"
    return {
        "val_balanced_accuracy": logged[prefix + "balanced_accuracy"],
        "val_macro_auc": logged[prefix + "macro_auc"],
        "val_ece": logged.get("val_adjusted_ece", logged["val_ece"]),
        "train_seconds": result["train_seconds"],
    }


def flip_tta_row(model_uri: str, data_dir: str, manifest: str) -> dict[str, float]:
    """Validation figures of a logged model without and with test-time augmentation (mean over the 4 flips)."""
    import numpy as np

    from skinml.core.recipe import TrainConfig
    from skinml.data.loader import image_dataset
    from skinml.data.split import read_manifest
    from skinml.data.training_set import labelled_split
    from skinml.evaluation.metrics import classification_metrics, expected_calibration_error
    from skinml.tracking.model_store import load_keras_model

    model = load_keras_model(model_uri)
    data, _, classes = labelled_split(data_dir, read_manifest(manifest), TrainConfig(seed=0))
    val = data[data["split"] == "val"]
    images = np.concatenate([b.numpy() for b in image_dataset(val["path"].tolist(), int(model.input_shape[1]), 64)])
    flips = [images, images[:, ::-1], images[:, :, ::-1], images[:, ::-1, ::-1]]
    probs = [np.asarray(model.predict(view, batch_size=64, verbose=0)) for view in flips]
    labels = val["label"].to_numpy()
    out = {}
    for name, p in (("plain", probs[0]), ("flip_tta", np.mean(probs, axis=0))):
        metrics = classification_metrics(labels, p, classes)
        out[name] = {
            "val_balanced_accuracy": metrics["balanced_accuracy"],
            "val_macro_auc": metrics["macro_auc"],
            "val_ece": expected_calibration_error(labels, p)[0],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--manifest", required=True, help="split manifest shared by every row (skinml split)")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {list(ROWS)}")
    parser.add_argument("--experiment", default="skinml-ablation")
    parser.add_argument(
        "--seeds",
        default="42",
        help="training seeds per row, comma-separated; with several, each figure is their median",
    )
    parser.add_argument(
        "--tta-of",
        metavar="MODEL_URI",
        help="instead of training rows: a logged model's validation figures with flip TTA",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.tta_of:
        print(json.dumps(flip_tta_row(args.tta_of, args.data_dir, args.manifest), indent=2))
        return
    from skinml.core.run_context import RunContext
    from skinml.stages.train import train

    results = {}
    seeds = args.seeds.split(",")
    for name in args.rows.split(","):
        runs = []
        for seed in seeds:
            command = (
                f"skinml train {ROWS[name]} --data-dir {args.data_dir} --manifest {args.manifest} "
                f"--weights {args.weights} --experiment {args.experiment} --seed {seed}"
            )
            train_args = build_parser().parse_args(shlex.split(command)[1:])
            result = train(
                training_config(train_args),
                train_args.data_dir,
                train_args.manifest,
                context=RunContext(args.experiment),
            )
            runs.append({**row_metrics(result), "run_id": result["run_id"]})
            print(json.dumps({name: runs[-1], "seed": seed}), flush=True)
        results[name] = {key: statistics.median(run[key] for run in runs) for key in runs[0] if key != "run_id"}
        results[name]["command"] = f"skinml train {ROWS[name]}" + (f" --seed {seeds[0]}" if len(seeds) == 1 else "")

    if len(seeds) > 1:
        print(f"\nmedians over seeds {args.seeds}")
    print(f"\n{'row':<26}{'val bal acc':>12}{'val AUC':>9}{'val ECE':>9}{'train s':>9}  command")
    for name, row in results.items():
        print(
            f"{name:<26}{row['val_balanced_accuracy']:>12.3f}{row['val_macro_auc']:>9.3f}{row['val_ece']:>9.3f}"
            f"{row['train_seconds']:>9.0f}  {row['command']}"
        )


if __name__ == "__main__":
    main()
