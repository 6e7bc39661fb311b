"""Wall time of an Optuna sweep on cached features (the sweep alone, features warmed first), with the best trial
against the baseline trial. See docs/benchmarks.md.

    python benchmarks/bench_sweep.py --data-dir ../shared/data/ham10000 \
        --weights ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

import optuna
from arguments import (
    benchmark_parser,  # benchmarks/ is on sys.path when a script in it runs
)


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--n-trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="skinml-sweep-bench-")
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{workdir}/mlflow.db")

    from skinml.core.recipe import TrainConfig
    from skinml.data.training_set import labelled_split
    from skinml.stages.sweep import sweep
    from skinml.training.fit import cached_features

    base = TrainConfig(weights=args.weights, epochs=args.epochs)
    started = time.perf_counter()
    data, _, _ = labelled_split(args.data_dir, None, base)
    cached_features(base, data)
    print(f"features ready (cache) in {time.perf_counter() - started:.0f} s", flush=True)

    storage = f"sqlite:///{workdir}/study.db"
    started = time.perf_counter()
    summary = sweep(args.data_dir, base, n_trials=args.n_trials, study_name="bench", storage=storage)
    wall = time.perf_counter() - started
    trials = optuna.load_study(study_name="bench", storage=storage).trials
    seconds = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials if t.datetime_complete]
    print(
        f"{args.n_trials} trials x {args.epochs} epochs: {wall:.0f} s wall "
        f"(median {statistics.median(seconds):.1f} s a trial; {summary['n_pruned']} pruned)"
    )
    print(f"baseline trial (dropout 0.2, lr 1e-3): val balanced accuracy {summary['baseline_value']:.3f}")
    print(f"best trial {summary['best_trial']} {summary['best_params']}: {summary['best_value']:.3f}")


if __name__ == "__main__":
    main()
