"""Memory and time against the number of images: the data folder at x1, x2, x4 (the larger sets built for scale only:
each image written again under a new image and lesion id with a fixed flip or rotation), `baseline` and `best
--fine-tune-epochs 1` on each, cold then warm cache: peak RSS and wall time of each stage, the cache's file count
and the time of `cache info`. Prints a table, writes scale.json and scale.png in the work folder.

    python benchmarks/bench_scale.py --data-dir ../shared/data/ham10000 \
        --weights ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5 [--images 1000]
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from arguments import benchmark_parser, isolated_store, weights_argument
from bench_pipeline import subset
from PIL import Image

from skinml.core.names import FEATURE_SECONDS_TAG, VAL, metric_name
from skinml.features.cache import FeatureCache

COPIES = (Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.ROTATE_180)
RECIPES = {"baseline": ["--preset", "baseline"], "best": ["--preset", "best", "--fine-tune-epochs", "1"]}


def grown(base: Path, scale: int, dest: Path) -> Path:
    """`base` and scale-1 copies of it: copy c of image X is X_c<c> of lesion L_c<c>, flipped or rotated."""
    metadata = next(base.glob("*metadata*.csv"))
    frame = pd.read_csv(metadata)
    (dest / "images").mkdir(parents=True, exist_ok=True)
    files = {path.stem: path for path in base.rglob("*.jpg")}
    frames = [frame]
    for copy in range(1, scale):
        renamed = frame.assign(image_id=frame["image_id"] + f"_c{copy}", lesion_id=frame["lesion_id"] + f"_c{copy}")
        for original, image_id in zip(frame["image_id"], renamed["image_id"]):
            target = dest / "images" / f"{image_id}.jpg"
            if not target.exists():
                Image.open(files[original]).transpose(COPIES[copy - 1]).save(target, quality=95)
        frames.append(renamed)
    for image_id in frame["image_id"]:
        link = dest / "images" / f"{image_id}.jpg"
        if not link.exists():
            link.symlink_to(files[image_id].resolve())
    pd.concat(frames).to_csv(dest / metadata.name, index=False)
    return dest


def measured(args: list[str], env: dict) -> tuple[dict, float, float]:
    """`skinml ...` in a fresh process: its JSON output, wall seconds and peak RSS in MB (GNU time's maximum
    resident set size of the process)."""
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "PEAK_KB %M", sys.executable, "-m", "skinml.app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"skinml {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    peak_kb = next(line.split()[1] for line in reversed(done.stderr.splitlines()) if line.startswith("PEAK_KB"))
    return json.loads(done.stdout), wall, int(peak_kb) / 1024


def phases(run_id: str, env: dict) -> dict[str, float]:
    """Seconds of a train run's phases from what it logged: extraction (its tag), the warm-up (from the end of
    extraction to the last warm-up epoch's validation) and one fine-tuning epoch."""
    os.environ["MLFLOW_TRACKING_URI"] = env["MLFLOW_TRACKING_URI"]
    import mlflow

    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    extraction = float(run.data.tags[FEATURE_SECONDS_TAG])
    stamps = {m.step: m.timestamp / 1000 for m in client.get_metric_history(run_id, metric_name(VAL, "loss"))}
    epochs = int(run.data.params["epochs"])
    result = {
        "extraction": extraction,
        "warm-up": stamps[epochs] - run.info.start_time / 1000 - extraction if stamps else float("nan"),
    }
    if epochs + 1 in stamps:
        result["fine-tune epoch"] = stamps[epochs + 1] - stamps[epochs]
    return result


def many_entries(n: int, root: Path) -> dict[str, float]:
    """Seconds to write `n` entries of 64 values (10,000 per call), then of `info` and `clear` on them."""
    cache = FeatureCache(root)
    started = time.perf_counter()
    for start in range(0, n, 10_000):
        cache.put_many(
            {
                hashlib.sha256(str(k).encode()).hexdigest(): np.full(64, k, dtype=np.float32)
                for k in range(start, min(n, start + 10_000))
            }
        )
    written = time.perf_counter() - started
    started = time.perf_counter()
    entries = FeatureCache(root).info()["entries"]
    counted = time.perf_counter() - started
    started = time.perf_counter()
    FeatureCache(root).clear()
    return {"entries": entries, "write_s": written, "info_s": counted, "clear_s": time.perf_counter() - started}


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--images", type=int, default=None, help="a subset of the data (whole lesions) as x1")
    parser.add_argument("--scales", default="1,2,4")
    parser.add_argument("--recipes", default="baseline,best")
    parser.add_argument(
        "--entries",
        type=int,
        default=0,
        help="also time `cache info` and `cache clear` on a cache of this many small entries (e.g. 1000000)",
    )
    parser.add_argument("--workdir", default=None, help="where the data, stores and caches go (default: temp)")
    args = parser.parse_args()
    weights = weights_argument(args.weights)
    workdir, _ = isolated_store(args.workdir, "skinml-bench-scale-")
    base = Path(args.data_dir).resolve()
    if args.images:
        base = subset(base, args.images, workdir / "subset")
    rows = []
    for scale in (int(s) for s in args.scales.split(",")):
        data = grown(base, scale, workdir / f"x{scale}")
        folder, env = isolated_store(str(workdir / f"store-x{scale}"), "")
        images = len(pd.read_csv(next(data.glob("*metadata*.csv"))))
        manifest = folder / "manifest.csv"
        measured(["split", "--data-dir", str(data), "--seed", "42", "--output", str(manifest)], env)
        for recipe in args.recipes.split(","):
            for cache in ("cold", "warm"):
                trained, wall, peak = measured(
                    [
                        "train",
                        *RECIPES[recipe],
                        "--data-dir",
                        str(data),
                        "--weights",
                        weights,
                        "--manifest",
                        str(manifest),
                        "--seed",
                        "42",
                    ],
                    env,
                )
                evaluated, eval_wall, eval_peak = measured(["evaluate", "--model-uri", trained["model_uri"]], env)
                info, info_wall, _ = measured(["cache", "info"], env)
                started = time.perf_counter()
                FeatureCache(info["path"]).info()
                row = {
                    "scale": scale,
                    "images": images,
                    "recipe": recipe,
                    "cache": cache,
                    "train_s": wall,
                    "train_peak_mb": peak,
                    **phases(trained["run_id"], env),
                    "evaluate_s": eval_wall,
                    "evaluate_peak_mb": eval_peak,
                    "cache_entries": info["entries"],
                    "cache_files": info["files"],
                    "cache_info_call_s": time.perf_counter() - started,
                    "cache_info_command_s": info_wall,
                    "val_balanced_accuracy": trained["metrics"]["val_balanced_accuracy"],
                    "test_balanced_accuracy": evaluated["balanced_accuracy"],
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.entries:
        print(json.dumps(many_entries(args.entries, workdir / "many")), flush=True)
    table = pd.DataFrame(rows)
    (workdir / "scale.json").write_text(table.to_json(orient="records", indent=1))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}" if abs(v) < 1 else f"{v:.1f}"))
    plot(table, workdir / "scale.png")
    print(f"\n{workdir / 'scale.json'}, {workdir / 'scale.png'}")


def plot(table: pd.DataFrame, path: Path) -> None:
    """Peak memory and seconds per image of each phase against images, per recipe (warm cache; extraction cold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (memory, time_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    for recipe, runs in table.groupby("recipe"):
        warm, cold = runs[runs["cache"] == "warm"], runs[runs["cache"] == "cold"]
        memory.plot(warm["images"], warm["train_peak_mb"] / 1024, marker="o", label=f"{recipe} (warm)")
        memory.plot(cold["images"], cold["train_peak_mb"] / 1024, marker="x", linestyle=":", label=f"{recipe} (cold)")
        for phase, source in (("extraction", cold), ("warm-up", warm), ("fine-tune epoch", warm), ("evaluate_s", warm)):
            if phase in source and source[phase].notna().any():
                time_axis.plot(
                    source["images"],
                    1000 * source[phase] / source["images"],
                    marker="o",
                    label=f"{recipe}: {phase.removesuffix('_s')}",
                )
    memory.set(title="peak RSS of skinml train", xlabel="images", ylabel="GB", ylim=(0, None))
    time_axis.set(title="milliseconds per image", xlabel="images", ylabel="ms / image", ylim=(0, None))
    memory.legend(), time_axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
