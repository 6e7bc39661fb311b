"""The README's results table and the promotion rule on the real data, in one command.

On the seed-42 lesion-grouped split it trains and evaluates `baseline` and registers it (the champion), retrains the
champion's recipe on the unchanged data through the retrain flow (the scheduled retraining: the champion must stay),
then trains and evaluates `best`, registers it and applies the promotion rule (a clearly better challenger: it must
win). It prints the README's table (markdown) and both promotion decisions with their intervals and durations.

    python benchmarks/results_table.py --data-dir ../shared/data/ham10000 \
        --weights ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5 [--workdir D]

Everything goes to an MLflow store and feature cache of its own (`--workdir`, default a new temporary folder).
"""

from __future__ import annotations

import os
import time

# benchmarks/ is on sys.path when a script in it runs
from arguments import benchmark_parser, isolated_store, weights_argument


def table(baseline: dict, best: dict) -> str:
    """The README's results table from the two evaluation results."""

    def ci(result: dict, name: str) -> str:
        low, high = result["ci95"][name]
        return f"{result[name]:.3f} [{low:.3f}, {high:.3f}]"

    def recalls(result: dict) -> str:
        return " / ".join(f"{values['recall']:.2f}" for values in result["per_class"].values())

    rows = [
        ("balanced accuracy [95% lesion bootstrap]", ci(baseline, "balanced_accuracy"), ci(best, "balanced_accuracy")),
        ("macro AUC [95%]", ci(baseline, "macro_auc"), ci(best, "macro_auc")),
        (
            "accuracy / macro F1",
            f"{baseline['accuracy']:.3f} / {baseline['macro_f1']:.3f}",
            f"{best['accuracy']:.3f} / {best['macro_f1']:.3f}",
        ),
        ("expected calibration error", f"{baseline['ece']:.3f}", f"{best['ece']:.3f}"),
        (f"recall {' / '.join(baseline['per_class'])}", recalls(baseline), recalls(best)),
    ]
    lines = [
        f"| test split ({baseline['n_images']:,} images) | `baseline` (the original recipe) | `best` (fine-tuned "
        f"from block 4) |",
        "|---|---|---|",
    ]
    return "\n".join(lines + [f"| {name} | {a} | {b} |" for name, a, b in rows])


def promotion_line(decision: dict) -> str:
    import mlflow

    run = mlflow.get_run(decision["promotion_run_id"]).info
    return f"{decision['reason']} (promote run: {(run.end_time - run.start_time) / 1000:.1f} s)"


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--workdir", help="folder for the MLflow store and the feature cache")
    args = parser.parse_args()
    data_dir, weights = os.path.abspath(args.data_dir), weights_argument(args.weights)
    folder, env = isolated_store(args.workdir, "skinml-results-")
    os.environ.update(env)
    os.chdir(folder)
    from flows.retrain import retrain_flow
    from skinml.core.recipe import recipe
    from skinml.registry.promotion import promote
    from skinml.registry.versions import register
    from skinml.stages.evaluate import evaluate
    from skinml.stages.split import run_split
    from skinml.stages.train import train

    manifest = folder / "manifest.csv"
    run_split(data_dir, manifest, seed=42)
    results, started = {}, time.time()
    for preset in ("baseline", "best"):
        trained = train(recipe(preset, {"weights": weights}), data_dir, manifest)
        results[preset] = evaluate(trained["model_uri"])
        print(f"{preset}: trained and evaluated in {(time.time() - started) / 60:.1f} min", flush=True)
        registered = register(trained["model_uri"], metrics=results[preset])
        if preset == "baseline":  # v1, the champion: retrain its recipe on the same data
            retrained = retrain_flow(data_dir)
            print("retrain on unchanged data:", promotion_line(retrained["promotion"]), flush=True)
        else:
            print(f"best (v{registered['version']}) against the champion:", promotion_line(promote()), flush=True)
        started = time.time()
    print(table(results["baseline"], results["best"]))


if __name__ == "__main__":
    main()
