"""Speed and quality of frozen-backbone training: backbone and feature-extraction throughput, and the wall time,
peak memory and balanced accuracy of `skinml train` with a cold feature cache, a warm one, a cold one at bf16 (on a
CPU with native bf16) and the plain Keras way (backbone in the loop), all on one split, in one run.
See docs/benchmarks.md.

    python benchmarks/bench_training.py --data-dir ../shared/data/ham10000 \
        --weights ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from arguments import benchmark_parser, isolated_store  # benchmarks/ is on sys.path when a script in it runs


def run_cli(args: list[str], env: dict[str, str]) -> tuple[dict, float]:
    """Run `skinml ...` in a fresh process; returns its JSON output and wall time."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "skinml.app.cli", *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"skinml {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout), wall


def throughput(data_dir: str, weights: str, n_images: int, repeats: int) -> dict[str, dict[str, float]]:
    """Per engine (and, on a CPU with native bf16, OpenVINO at bf16 too): backbone images/s on in-memory batches,
    and end-to-end feature extraction images/s from JPEGs."""
    import importlib.util

    from skinml.core.recipe import AugmentConfig
    from skinml.data.dataset import load_dataset
    from skinml.features.cache import FeatureCache
    from skinml.features.extraction import extract_features
    from skinml.model.engine import cpu_has_bf16, predictor
    from skinml.model.network import build_feature_extractor

    extractor = build_feature_extractor(224, weights)
    batch = np.random.default_rng(0).uniform(0, 255, (64, 224, 224, 3)).astype("float32")
    paths = load_dataset(data_dir, check_images=False)["path"].tolist()[:n_images]
    settings = [("tensorflow", "f32")]
    if importlib.util.find_spec("openvino"):
        settings += [("openvino", "f32")] + ([("openvino", "bf16")] if cpu_has_bf16() else [])
    figures = {}
    # Every repeat gets a fresh cache folder, all deleted only at the end: deleting thousands of files between
    # repeats stalled the next repeat's reads for ~5 s on our ext4 disk (mounted with discard), halving its figure.
    scratch = Path(tempfile.mkdtemp(prefix="skinml-throughput-"))
    for engine, precision in settings:
        run_backbone = predictor(extractor, engine, precision)
        run_backbone(batch)  # warm-up (and, for OpenVINO, compilation)
        rates = []
        for _ in range(repeats):
            started = time.perf_counter()
            run_backbone(batch)
            rates.append(64 / (time.perf_counter() - started))
        extraction = []
        for _ in range(repeats):
            cache = FeatureCache(Path(tempfile.mkdtemp(dir=scratch)))
            started = time.perf_counter()
            extract_features(extractor, paths, [0], AugmentConfig(), 0, cache, engine=engine, precision=precision)
            extraction.append(len(paths) / (time.perf_counter() - started))
        figures[f"{engine} {precision}"] = {
            "backbone_images_per_s": statistics.median(rates),
            "extraction_images_per_s": statistics.median(extraction),
        }
    shutil.rmtree(scratch)
    return figures


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--cached-views", type=int, help="default: the preset's")
    parser.add_argument("--throughput-images", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-plain", action="store_true", help="leave out the (slow) plain Keras run")
    parser.add_argument("--throughput-only", action="store_true", help="only the images/s figures")
    parser.add_argument("--workdir", default=None, help="where the MLflow store and caches go (default: temp)")
    args = parser.parse_args()

    workdir, env = isolated_store(args.workdir, "skinml-bench-")
    os.environ.update({k: env[k] for k in ("TF_CPP_MIN_LOG_LEVEL",)})

    figures = throughput(args.data_dir, args.weights, args.throughput_images, args.repeats)
    print(json.dumps(figures), flush=True)
    if not args.throughput_only:
        rows = training_rows(args, env, workdir)
    print(
        f"\n{'engine':<16}{'backbone images/s':>19}{'extraction images/s':>21}   (median of {args.repeats}; "
        f"backbone: batch 64, 224 px; extraction: {args.throughput_images} JPEGs, "
        "decode+resize+backbone+cache write)"
    )
    for engine, figure in figures.items():
        print(f"{engine:<16}{figure['backbone_images_per_s']:>19.1f}{figure['extraction_images_per_s']:>21.1f}")
    if args.throughput_only:
        return
    reference = rows.get("plain Keras", {}).get("wall_s")
    print(
        f"\n{'train --preset baseline':<24}{'wall s':>10}{'speed-up':>10}{'peak MB':>10}{'val bal acc':>13}"
        f"{'test bal acc':>14}{'test AUC':>10}"
    )
    for mode, row in rows.items():
        ratio = f"{reference / row['wall_s']:.1f}x" if reference else "-"
        print(
            f"{mode:<24}{row['wall_s']:>10.1f}{ratio:>10}{row['peak_rss_mb']:>10.0f}"
            f"{row['val_balanced_accuracy']:>13.3f}{row['test_balanced_accuracy']:>14.3f}"
            f"{row['test_macro_auc']:>10.3f}"
        )
        if "test_balanced_accuracy_f32" in row:
            print(
                f"{'  the same, served f32':<64}{row['test_balanced_accuracy_f32']:>14.3f}"
                f"{row['test_macro_auc_f32']:>10.3f}"
            )


def training_rows(args: argparse.Namespace, env: dict[str, str], workdir: Path) -> dict[str, dict[str, float]]:
    """`skinml train` cold cache, warm cache, cold cache at bf16 (on a CPU with native bf16) and (unless skipped)
    plain Keras, each then evaluated on test at the precision it was trained at."""
    from skinml.model.engine import PRECISION_ENV, cpu_has_bf16

    manifest = workdir / "manifest.csv"
    run_cli(["split", "--data-dir", args.data_dir, "--output", str(manifest)], env)
    common = [
        "train",
        "--data-dir",
        args.data_dir,
        "--weights",
        args.weights,
        "--manifest",
        str(manifest),
        "--epochs",
        str(args.epochs),
    ]
    if args.cached_views is not None:
        common += ["--cached-views", str(args.cached_views)]
    f32, bf16 = {**env, PRECISION_ENV: "f32"}, {**env, PRECISION_ENV: "bf16"}
    modes = {"cold cache": (common, f32), "warm cache": (common, f32)}
    if cpu_has_bf16():  # bf16 features have their own cache entries: this run is cold too
        modes["cold cache, bf16"] = (common, bf16)
    if not args.skip_plain:
        modes["plain Keras"] = (common + ["--no-feature-cache"], f32)
    rows = {}
    for mode, (cli_args, mode_env) in modes.items():
        trained, wall = run_cli(cli_args, mode_env)
        evaluated, _ = run_cli(["evaluate", "--model-uri", trained["model_uri"]], mode_env)
        rows[mode] = {
            "wall_s": wall,
            "peak_rss_mb": trained["peak_rss_mb"],
            "val_balanced_accuracy": trained["metrics"]["val_balanced_accuracy"],
            "test_balanced_accuracy": evaluated["balanced_accuracy"],
            "test_macro_auc": evaluated["macro_auc"],
        }
        if mode_env is bf16:  # the same model served at f32: what a bf16-trained head loses on f32 features
            skewed, _ = run_cli(["evaluate", "--model-uri", trained["model_uri"]], f32)
            rows[mode].update(
                test_balanced_accuracy_f32=skewed["balanced_accuracy"], test_macro_auc_f32=skewed["macro_auc"]
            )
        print(json.dumps({mode: rows[mode]}), flush=True)
    return rows


if __name__ == "__main__":
    main()
