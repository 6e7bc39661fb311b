"""`mlflow models serve` under concurrent clients: starts the server on 127.0.0.1, then for each number of clients
sends one-image JSON requests from that many threads for a bounded time and count, and prints answers/s, p50/p99
latency, the HTTP status counts and the server's resident memory (all its processes) before and after each step.

    MLFLOW_TRACKING_URI=... python benchmarks/bench_load.py --data-dir ../shared/data/ham10000 \
        [--model-uri models:/skinml@champion] [--clients 1 4 16 64] [--seconds 20] [--max-requests 5000] \
        [--workers 1]
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from bench_serving import start_server, stop_server
from soak_serving import group_rss_mb


def one_request(url: str, body: bytes) -> tuple[int, float]:
    """HTTP status and seconds of one request."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        error.read()
        status = error.code
    except OSError:
        status = 0  # no answer at all (connection refused or reset)
    return status, time.perf_counter() - started


def load_step(url: str, bodies: list[bytes], clients: int, seconds: float, max_requests: int) -> dict:
    """`clients` threads sending requests until `seconds` have passed or `max_requests` were sent in all."""
    statuses: collections.Counter = collections.Counter()
    latencies: list[float] = []
    lock, sent = threading.Lock(), [0]
    deadline = time.perf_counter() + seconds

    def client(index: int) -> None:
        while time.perf_counter() < deadline:
            with lock:
                if sent[0] >= max_requests:
                    return
                sent[0] += 1
                body = bodies[sent[0] % len(bodies)]
            status, elapsed = one_request(url, body)
            with lock:
                statuses[status] += 1
                if status == 200:
                    latencies.append(elapsed)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {
        "clients": clients,
        "answered": statuses[200],
        "statuses": dict(sorted(statuses.items())),
        "per_s": statuses[200] / wall,
        "p50_ms": float(np.percentile(latencies, 50) * 1000) if latencies else float("nan"),
        "p99_ms": float(np.percentile(latencies, 99) * 1000) if latencies else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder with lesion JPEGs to send")
    parser.add_argument("--model-uri", default="models:/skinml@champion")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--seconds", type=float, default=20, help="length of each step")
    parser.add_argument("--max-requests", type=int, default=5000, help="requests per step at most")
    parser.add_argument("--workers", type=int, default=1, help="mlflow models serve --workers")
    args = parser.parse_args()

    files = sorted(Path(args.data_dir).rglob("*.jpg"))[:200]
    bodies = [
        json.dumps({"dataframe_records": [{"image": base64.b64encode(f.read_bytes()).decode()}]}).encode()
        for f in files
    ]
    server, url = start_server(
        args.model_uri, json.loads(bodies[0])["dataframe_records"][0]["image"], workers=args.workers
    )
    rows = []
    try:
        load_step(url, bodies, 2, 3, 200)  # warm-up
        for clients in args.clients:
            before = group_rss_mb(server.pid)
            row = load_step(url, bodies, clients, args.seconds, args.max_requests)
            rows.append({**row, "rss_before_mb": before, "rss_after_mb": group_rss_mb(server.pid)})
    finally:
        stop_server(server)
    print(f"model {args.model_uri}, --workers {args.workers}, {args.seconds:g} s per step, one image per request")
    print("| clients | answered 200 | other statuses | answers/s | p50 | p99 | server memory before -> after |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        others = {code: n for code, n in row["statuses"].items() if code != 200} or "none"
        print(
            f"| {row['clients']} | {row['answered']:,} | {others} | {row['per_s']:.1f} | {row['p50_ms']:.0f} ms "
            f"| {row['p99_ms']:.0f} ms | {row['rss_before_mb']:.0f} -> {row['rss_after_mb']:.0f} MB |"
        )


if __name__ == "__main__":
    main()
