"""Cold start of the two ways users get an answer: `skinml predict` on one image in a new process, and
`mlflow models serve` from its start to its first answer. Prints, per model, the median of five of each.

    MLFLOW_TRACKING_URI=... python benchmarks/bench_startup.py --image ../shared/data/ham10000/images/ISIC_0024306.jpg \
        --model-uri models:/skinml/1 --model-uri models:/skinml/2 [--repeats 5]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_serving import start_server, stop_server

BIN = Path(sys.executable).parent


def predict_seconds(model_uri: str, image: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "skinml"), "predict", image, "--model-uri", model_uri, "--json"], capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"skinml predict failed: {done.stderr[-2000:]}")
    return elapsed


def serve_seconds(model_uri: str, image: str) -> float:
    """From starting `mlflow models serve` to the first answer to a one-image request."""
    probe = base64.b64encode(Path(image).read_bytes()).decode()
    started = time.perf_counter()
    server, _ = start_server(model_uri, probe)
    elapsed = time.perf_counter() - started
    stop_server(server)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", required=True, help="one lesion JPEG")
    parser.add_argument("--model-uri", action="append", required=True, help="a model to start (repeatable)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for uri in args.model_uri:
        predict = [predict_seconds(uri, args.image) for _ in range(args.repeats)]
        serve = [serve_seconds(uri, args.image) for _ in range(args.repeats)]
        rows.append((uri, statistics.median(predict), min(predict), statistics.median(serve), min(serve)))
    print(f"median (min) of {args.repeats} cold starts, one image")
    print(f"{'model':28s} {'skinml predict':>20s} {'serve, first answer':>22s}")
    for uri, predict_median, predict_min, serve_median, serve_min in rows:
        print(f"{uri:28s} {predict_median:9.1f} s ({predict_min:.1f})  {serve_median:12.1f} s ({serve_min:.1f})")


if __name__ == "__main__":
    main()
