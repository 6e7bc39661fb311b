"""One recipe on several lesion-grouped splits: how much of a test figure belongs to the draw of lesions.

For each split seed it writes the split (`skinml split --seed S`), trains each preset on it (training seed 42, or the
presets' own options plus --options) and evaluates the model on that split's own test part; it prints one row per
split and preset: validation and test balanced accuracy and macro AUC (test with the 95% lesion-bootstrap interval),
df found, and the training time. See docs/ablation.md §6, "Across lesion-grouped splits".

    python benchmarks/across_splits.py --data-dir ../shared/data/ham10000 \
        --weights ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5 \
        --splits 42,1,2 --presets baseline,best [--options "--fine-tune-epochs 16"] [--output-dir outputs/splits]
"""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path

from arguments import benchmark_parser  # benchmarks/ is on sys.path when a script in it runs


def split_row(data_dir: str, weights: str, manifest: Path, preset: str, options: str, experiment: str) -> dict:
    """Train `preset` on the split in `manifest` and evaluate it on that split's test part."""
    from skinml.app.cli import build_parser
    from skinml.app.commands import training_config
    from skinml.core.run_context import RunContext
    from skinml.stages.evaluate import evaluate
    from skinml.stages.train import train

    args = build_parser().parse_args(
        [
            "train",
            "--preset",
            preset,
            "--data-dir",
            data_dir,
            "--manifest",
            str(manifest),
            "--weights",
            weights,
            "--experiment",
            experiment,
            *shlex.split(options),
        ]
    )
    trained = train(training_config(args), args.data_dir, args.manifest, context=RunContext(experiment))
    tested = evaluate(trained["model_uri"], context=RunContext(experiment))
    df = tested["per_class"]["df"]
    return {
        "val_balanced_accuracy": trained["metrics"]["val_balanced_accuracy"],
        "val_macro_auc": trained["metrics"]["val_macro_auc"],
        "test_balanced_accuracy": tested["balanced_accuracy"],
        "test_macro_auc": tested["macro_auc"],
        "ci95": tested["ci95"],
        "df_found": f"{round(df['recall'] * df['support'])} of {df['support']}",
        "lesions_crossing_splits": tested["lesions_crossing_splits"],
        "train_seconds": trained["train_seconds"],
        "run_id": trained["run_id"],
    }


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--splits", default="42,1,2", help="split seeds, comma-separated")
    parser.add_argument("--presets", default="baseline,best", help="presets, comma-separated")
    parser.add_argument("--options", default="", help="more `skinml train` options for every run, quoted")
    parser.add_argument("--output-dir", default="outputs/splits", help="where the split manifests are written")
    parser.add_argument("--experiment", default="skinml-splits")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from skinml.core.run_context import RunContext
    from skinml.stages.split import run_split

    rows = []
    for seed in [int(s) for s in args.splits.split(",")]:
        manifest = Path(args.output_dir) / f"manifest_split{seed}.csv"
        run_split(args.data_dir, manifest, seed=seed, context=RunContext(args.experiment))
        for preset in args.presets.split(","):
            row = {
                "split": seed,
                "preset": preset,
                **split_row(args.data_dir, args.weights, manifest, preset, args.options, args.experiment),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)

    print(
        f"\n{'split':>5}  {'preset':<10}{'val bal acc':>12}{'val AUC':>9}  {'test bal acc [95%]':<24}"
        f"{'test AUC [95%]':<24}{'df found':>10}{'train min':>10}"
    )
    for row in rows:
        (bal_low, bal_high), (auc_low, auc_high) = row["ci95"]["balanced_accuracy"], row["ci95"]["macro_auc"]
        print(
            f"{row['split']:>5}  {row['preset']:<10}{row['val_balanced_accuracy']:>12.3f}{row['val_macro_auc']:>9.3f}"
            f"  {row['test_balanced_accuracy']:.3f} [{bal_low:.3f}, {bal_high:.3f}]    "
            f"{row['test_macro_auc']:.3f} [{auc_low:.3f}, {auc_high:.3f}]    "
            f"{row['df_found']:>10}{row['train_seconds'] / 60:>10.1f}"
        )


if __name__ == "__main__":
    main()
