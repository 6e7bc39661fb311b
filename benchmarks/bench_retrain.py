"""Retraining on unchanged data with a warm feature cache: how long the retrain flow takes (what the scheduled
deployment runs) and how many images its train stage sent through the backbone, against the pipeline that made the
champion. Runs on a subset of the data folder (--images, whole lesions, as bench_pipeline.py) in a store and cache of
its own: the pipeline once (cold cache), then the retrain flow --repeats times.

    python benchmarks/bench_retrain.py --data-dir ../shared/data/ham10000 \
        --weights ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5 [--images 700]
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from arguments import benchmark_parser, isolated_store, weights_argument
from bench_pipeline import subset

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
NEEDED = re.compile(r"features: (\d+) of (\d+) images need the backbone")
RETRAIN = (
    "import logging, sys; logging.basicConfig(level=logging.INFO); from flows.retrain import retrain_flow; "
    "retrain_flow(sys.argv[1])"
)


def run(command: list[str], env: dict, cwd: Path) -> tuple[float, int, int]:
    """Wall seconds, and the images that needed the backbone out of those the command asked the cache for."""
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:3])} failed: {done.stderr[-3000:]}")
    counts = [(int(n), int(total)) for n, total in NEEDED.findall(done.stdout + done.stderr)]
    return seconds, sum(n for n, _ in counts), sum(total for _, total in counts)


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--images", type=int, default=700)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", help="keep the store and cache here (default: a new temporary folder)")
    args = parser.parse_args()
    folder, env = isolated_store(args.workdir, "skinml-retrain-")
    env["PREFECT_HOME"] = str(folder / "prefect")
    env["PYTHONPATH"] = str(REPO)
    data = subset(Path(args.data_dir).resolve(), args.images, folder / "data")
    weights = weights_argument(args.weights)
    seconds, needed, total = run(
        [str(BIN / "skinml"), "pipeline", "--data-dir", str(data), "--weights", weights], env, folder
    )
    print(f"pipeline (cold cache): {seconds:.1f} s, {needed} of {total} images through the backbone", flush=True)
    times = []
    for i in range(args.repeats):
        seconds, needed, total = run([sys.executable, "-c", RETRAIN, str(data)], env, folder)
        times.append(seconds)
        print(
            f"retrain {i + 1} (unchanged data): {seconds:.1f} s, {needed} of {total} images through the backbone",
            flush=True,
        )
    print(f"retrain on unchanged data, median of {len(times)}: {statistics.median(times):.1f} s")


if __name__ == "__main__":
    main()
