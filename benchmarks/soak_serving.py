"""Memory of `mlflow models serve` under large and hostile requests: starts the server on 127.0.0.1, sends a bounded
mix of small requests, requests at the row limit, a 500-row request and a 50 MB body, and prints the server's resident
memory (all its processes) before, at its peak during, and after, with each request's HTTP status.

    MLFLOW_TRACKING_URI=... python benchmarks/soak_serving.py --data-dir ../shared/data/ham10000 \
        [--model-uri models:/skinml@champion] [--rounds 5]
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench_serving import start_server, stop_server


def group_rss_mb(pgid: int) -> float:
    """Resident memory, in MB, of every process in the process group (the CLI and its uvicorn worker)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # field 5 of /proc/PID/stat, the process group
                status = (stat.parent / "status").read_text()
                total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
        except (OSError, StopIteration, ValueError, IndexError):
            continue  # a process that ended while we read it
    return total / 1024


def post(url: str, body: bytes) -> tuple[int, str]:
    """HTTP status and the (shortened) message of one request."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, f"{len(json.loads(response.read())['predictions'])} predictions"
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}").get("message", "")[:90]


def request_body(images: list[str]) -> bytes:
    return json.dumps({"inputs": {"image": images}}).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder with lesion JPEGs to send")
    parser.add_argument("--model-uri", default="models:/skinml@champion")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the request mix")
    args = parser.parse_args()

    files = sorted(Path(args.data_dir).rglob("*.jpg"))[:500]
    images = [base64.b64encode(f.read_bytes()).decode() for f in files]
    mix = {
        "1 image": request_body(images[:1]),
        "64 images": request_body(images[:64]),
        f"500 images ({len(request_body(images)) / 1e6:.1f} MB)": request_body(images),
        "50 MB body (7 rows of 7 MB)": request_body(["A" * 7_000_000] * 7),
    }
    server, url = start_server(args.model_uri, images[0])
    peak, sampling = [0.0], [True]

    def sample() -> None:
        while sampling[0]:
            peak[0] = max(peak[0], group_rss_mb(server.pid))
            time.sleep(0.1)

    try:
        for _ in range(3):  # warm-up: the first requests build the pipelines
            post(url, mix["1 image"])
            post(url, mix["64 images"])
        before = group_rss_mb(server.pid)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        answers: dict[str, set] = {name: set() for name in mix}
        started = time.perf_counter()
        for _ in range(args.rounds):
            for name, body in mix.items():
                answers[name].add(post(url, body))
        elapsed = time.perf_counter() - started
        time.sleep(2)
        sampling[0] = False
        sampler.join()
        after = group_rss_mb(server.pid)
    finally:
        stop_server(server)
    print(f"model {args.model_uri}, {args.rounds} rounds of {len(mix)} requests in {elapsed:.0f} s")
    for name, seen in answers.items():
        for status, message in sorted(seen):
            print(f"  {name:30s} HTTP {status}  {message}")
    print(
        f"server RSS: before {before:.0f} MB, peak {peak[0]:.0f} MB (+{peak[0] - before:.0f}), "
        f"after {after:.0f} MB ({(after - before) / before:+.1%})"
    )


if __name__ == "__main__":
    main()
