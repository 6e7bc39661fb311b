"""`skinml train --preset best` with a cold feature cache, then a warm one, and (`--compare`) a variant of it on the
same warm cache, in one run, each evaluated on its test split: wall time, peak memory, validation and test figures.
See docs/benchmarks.md.

    python benchmarks/bench_best.py --data-dir ../shared/data/ham10000 \
        --weights ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5
"""

from __future__ import annotations

import json
import shlex

from arguments import benchmark_parser, isolated_store  # benchmarks/ is on sys.path when a script in it runs
from bench_training import run_cli


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--seed", type=int, default=42, help="split and training seed")
    parser.add_argument("--compare", default="", help='options of a variant of `best`, e.g. "--fine-tune-epochs 4"')
    parser.add_argument("--workdir", default=None, help="where the MLflow store and the cache go (default: temp)")
    args = parser.parse_args()

    workdir, env = isolated_store(args.workdir, "skinml-bench-best-")
    manifest = workdir / "manifest.csv"
    run_cli(["split", "--data-dir", args.data_dir, "--seed", str(args.seed), "--output", str(manifest)], env)
    common = [
        "train",
        "--preset",
        "best",
        "--data-dir",
        args.data_dir,
        "--weights",
        args.weights,
        "--manifest",
        str(manifest),
        "--seed",
        str(args.seed),
    ]
    modes = {"best, cold cache": common, "best, warm cache": common}
    if args.compare:
        modes[f"best {args.compare}, warm"] = common + shlex.split(args.compare)
    rows = {}
    for mode, cli_args in modes.items():
        trained, wall = run_cli(cli_args, env)
        evaluated, _ = run_cli(["evaluate", "--model-uri", trained["model_uri"]], env)
        rows[mode] = {
            "wall_s": wall,
            "peak_rss_mb": trained["peak_rss_mb"],
            "val_balanced_accuracy": trained["metrics"]["val_balanced_accuracy"],
            "val_macro_auc": trained["metrics"]["val_macro_auc"],
            "test_balanced_accuracy": evaluated["balanced_accuracy"],
            "test_macro_auc": evaluated["macro_auc"],
        }
        print(json.dumps({mode: rows[mode]}), flush=True)
    print(
        f"\n{'skinml train':<40}{'wall min':>10}{'peak GB':>9}{'val bal acc':>13}{'val AUC':>9}"
        f"{'test bal acc':>14}{'test AUC':>10}"
    )
    for mode, row in rows.items():
        print(
            f"{mode:<40}{row['wall_s'] / 60:>10.1f}{row['peak_rss_mb'] / 1024:>9.1f}"
            f"{row['val_balanced_accuracy']:>13.3f}{row['val_macro_auc']:>9.3f}"
            f"{row['test_balanced_accuracy']:>14.3f}{row['test_macro_auc']:>10.3f}"
        )


if __name__ == "__main__":
    main()
