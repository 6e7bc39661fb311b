"""HTTP serving latency of a registered model: starts `mlflow models serve` on 127.0.0.1, posts real lesion
images, prints p50/p95 latency for 1 image and images/s for batches of 32, then stops the server.

    MLFLOW_TRACKING_URI=... python benchmarks/bench_serving.py --data-dir ../shared/data/ham10000 \
        [--model-uri models:/skinml@champion] [--single 50] [--batches 10]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, images: list[str]) -> float:
    body = json.dumps({"dataframe_split": {"columns": ["image"], "data": [[i] for i in images]}}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        rows = json.loads(response.read())["predictions"]
    assert len(rows) == len(images)
    return time.perf_counter() - started


def start_server(model_uri: str, probe_image: str, workers: int = 1) -> tuple[subprocess.Popen, str]:
    """`mlflow models serve` of the model on a free port, once it has answered one image; returns it and its URL."""
    port = free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            model_uri,
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/invocations"
    deadline = time.time() + 300
    while True:
        try:
            post(url, [probe_image])
            return server, url
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                stop_server(server)
                sys.exit("the model server did not come up")
            time.sleep(0.2)  # fine enough for bench_startup.py, which times this


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder with lesion JPEGs to send")
    parser.add_argument("--model-uri", default="models:/skinml@champion")
    parser.add_argument("--single", type=int, default=50, help="number of 1-image requests")
    parser.add_argument("--batches", type=int, default=10, help="number of 32-image requests")
    args = parser.parse_args()

    files = sorted(Path(args.data_dir).rglob("*.jpg"))[: 32 + args.single]
    images = [base64.b64encode(f.read_bytes()).decode() for f in files]
    server, url = start_server(args.model_uri, images[0])
    try:
        for _ in range(3):  # warm-up
            post(url, images[:1])
            post(url, images[:32])
        single = [post(url, [image]) for image in images[32 : 32 + args.single]]
        batch = [32 / post(url, images[:32]) for _ in range(args.batches)]
    finally:
        stop_server(server)
    print(f"model {args.model_uri}, {args.single} single-image requests, {args.batches} requests of 32 images")
    print(f"1 image:   p50 {np.percentile(single, 50) * 1000:.0f} ms, p95 {np.percentile(single, 95) * 1000:.0f} ms")
    print(f"32 images: median {statistics.median(batch):.1f} images/s")


if __name__ == "__main__":
    main()
