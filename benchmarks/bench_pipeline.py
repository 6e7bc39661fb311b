"""Where a warm `mlflow run .` spends its time: each stage's wall time (its MLflow run), what the parent run spends
outside its stages (Prefect, registration, logging), and the whole command, against `skinml train` alone on the same
images. Runs on a subset of the data folder (--images of its metadata, whole lesions in a fixed random order) in a
store and cache of its own; each command runs once to warm the feature cache, then --repeats times measured (medians
printed).

    python benchmarks/bench_pipeline.py --data-dir ../shared/data/ham10000 \
        --weights ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5 [--images 700]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from arguments import benchmark_parser, isolated_store, weights_argument

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
STAGES = ("split", "train", "evaluate", "promote")


def subset(data_dir: Path, n_images: int, dest: Path) -> Path:
    """A folder with about `n_images` images of the metadata, whole lesions drawn in a fixed random order (so every
    class has lesions for train, validation and test), the images linked, not copied."""
    metadata = next(data_dir.glob("*metadata*.csv"))
    frame = pd.read_csv(metadata)
    lesions = frame["lesion_id"].drop_duplicates().sample(frac=1, random_state=42)
    counts = frame.groupby("lesion_id").size().loc[lesions].cumsum()
    kept = frame[frame["lesion_id"].isin(counts[counts <= n_images].index)]
    (dest / "images").mkdir(parents=True, exist_ok=True)
    files = {path.stem: path for path in data_dir.rglob("*.jpg")}
    for image_id in kept["image_id"]:
        source = files[image_id]
        link = dest / "images" / source.name
        if not link.exists():
            link.symlink_to(source)
    kept.to_csv(dest / metadata.name, index=False)
    return dest


def timed(command: list[str], env: dict, cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:3])} failed: {done.stderr[-3000:]}")
    return time.perf_counter() - started


def stage_seconds(env: dict) -> dict[str, float]:
    """The newest pipeline run's wall time, each of its stages' and what remains outside them."""
    import os

    os.environ["MLFLOW_TRACKING_URI"] = env["MLFLOW_TRACKING_URI"]
    import mlflow

    runs = mlflow.search_runs(experiment_names=["skinml"], output_format="list", order_by=["start_time DESC"])
    parent = next(run for run in runs if run.data.tags.get("skinml.stage") == "pipeline")
    seconds = {"pipeline run": (parent.info.end_time - parent.info.start_time) / 1000}
    for run in runs:
        stage = run.data.tags.get("skinml.stage")
        if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id and stage in STAGES:
            seconds[stage] = seconds.get(stage, 0) + (run.info.end_time - run.info.start_time) / 1000
    seconds["parent outside its stages"] = seconds["pipeline run"] - sum(seconds.get(s, 0) for s in STAGES)
    return seconds


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--images", type=int, default=700)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir")
    args = parser.parse_args()
    folder, env = isolated_store(args.workdir, "skinml-pipeline-")
    data = subset(Path(args.data_dir).resolve(), args.images, folder / "data")
    weights = weights_argument(args.weights)
    train = [str(BIN / "skinml"), "train", "--data-dir", str(data), "--weights", weights]
    run = [
        str(BIN / "mlflow"),
        "run",
        str(REPO),
        "--env-manager",
        "local",
        "--experiment-name",
        "skinml",
        "-P",
        f"data_dir={data}",
        "-P",
        f"weights={weights}",
    ]
    timed(train, env, folder)  # warms the feature cache for both (the same split, seed 42)
    timed(run, env, folder)
    rows: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        rows.setdefault("skinml train", []).append(timed(train, env, folder))
        rows.setdefault("mlflow run .", []).append(timed(run, env, folder))
        for name, value in stage_seconds(env).items():
            rows.setdefault(f"  {name}", []).append(value)
    n = len(pd.read_csv(next(data.glob("*metadata*.csv"))))
    print(f"{n} images, warm feature cache, medians of {args.repeats}")
    for name, values in rows.items():
        print(f"{name:32s} {statistics.median(values):7.1f} s")
    ratio = statistics.median(rows["mlflow run ."]) / statistics.median(rows["skinml train"])
    print(f"{'mlflow run . / skinml train':32s} {ratio:7.2f}")


if __name__ == "__main__":
    main()
