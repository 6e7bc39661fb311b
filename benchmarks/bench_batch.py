"""Batch scoring of a folder of images with a logged or registered model, on the same images: `skinml predict
--data-dir` (its score_folder), `pyfunc.predict` on a frame of base64 images, and Spark (`spark_udf`, env_manager=
"local", over `binaryFile` in local[2]; `spark64k` with spark.sql.files.openCostInBytes=65536). Prints rows/s (from
loading the model to the last row written: the interpreter's and Spark's start-up not counted; for Spark, the same
job again on the Python workers it started) and the peak memory of each run's whole process tree (the JVM and
Spark's Python workers included), the median of --repeats runs at the first size, one run at each other size.

    MLFLOW_TRACKING_URI=... python benchmarks/bench_batch.py --data-dir ../shared/data/ham10000 \
        --model-uri models:/skinml@champion [--images 1000 10000] [--repeats 3] [--ways skinml pyfunc spark spark64k]
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
import threading
import time
from pathlib import Path

from soak_serving import group_rss_mb

SKINML = """
import json, sys, time
from skinml.app.score_folder import score_folder
started = time.perf_counter()
scores = score_folder(sys.argv[1], sys.argv[2], sys.argv[3])
print(json.dumps({"seconds": time.perf_counter() - started, "rows": scores.scored}))
"""

PYFUNC = """
import base64, json, sys, time
from pathlib import Path
import pandas as pd
from skinml.tracking.model_store import load_model
files = sorted(Path(sys.argv[2]).iterdir())
started = time.perf_counter()
model = load_model(sys.argv[1], check_requirements=False)
frame = pd.DataFrame({"image": [base64.b64encode(f.read_bytes()).decode() for f in files]})
answer = model.predict(frame)
answer.assign(file=[f.name for f in files]).to_csv(sys.argv[3], index=False)
print(json.dumps({"seconds": time.perf_counter() - started, "rows": len(answer)}))
"""

SPARK = """
import json, sys, time
import mlflow
from pyspark.sql import SparkSession
builder = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
           .config("spark.driver.bindAddress", "127.0.0.1"))
spark = builder.config("spark.sql.files.openCostInBytes", OPEN_COST).getOrCreate()
started = time.perf_counter()
udf = mlflow.pyfunc.spark_udf(spark, sys.argv[1], env_manager="local")
images = spark.read.format("binaryFile").load(sys.argv[2])
partitions = images.rdd.getNumPartitions()
scored = images.select("path", udf("content").alias("prediction")).select("path", "prediction.*")
scored.write.mode("overwrite").parquet(sys.argv[3])
seconds = time.perf_counter() - started
rows = spark.read.parquet(sys.argv[3]).count()
started = time.perf_counter()  # again, on the Python workers already started: a long job's steady state
scored.write.mode("overwrite").parquet(sys.argv[3])
warm = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "rows": rows, "partitions": partitions, "warm_rows_per_s": rows / warm}))
spark.stop()
"""

# Spark as it comes (a file "costs" 4 MB: about 30 small images per partition, the model loaded for each), and with
# the cost of a file near a lesion image's size (docs/operations.md: a partition per core, or per 128 MB)
WAYS = {
    "skinml": SKINML,
    "pyfunc": PYFUNC,
    "spark": SPARK.replace("OPEN_COST", '"4194304"'),
    "spark64k": SPARK.replace("OPEN_COST", '"65536"'),
}


def image_folder(data_dir: Path, count: int, dest: Path) -> Path:
    """A plain folder of the first `count` images of the data (hard links where the file system allows)."""
    folder = dest / f"images-{count}"
    folder.mkdir(parents=True)
    for path in sorted(data_dir.rglob("*.jpg"))[:count]:
        try:
            os.link(path, folder / path.name)
        except OSError:
            shutil.copy(path, folder / path.name)
    return folder


def run_way(way: str, model_uri: str, folder: Path, output: Path, env: dict) -> dict:
    """One run of a way in its own process group: its figures and the group's peak resident memory."""
    process = subprocess.Popen(
        [sys.executable, "-c", WAYS[way], model_uri, str(folder), str(output)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    peak = [0.0]

    def watch() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], group_rss_mb(process.pid))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, _ = process.communicate()
    watcher.join()
    if process.returncode != 0:
        raise SystemExit(f"{way} failed (exit {process.returncode}): {out[-2000:]}")
    figures = json.loads(out.strip().splitlines()[-1])
    return {**figures, "rows_per_s": figures["rows"] / figures["seconds"], "peak_mb": peak[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="a folder of lesion JPEGs (searched recursively)")
    parser.add_argument("--model-uri", default="models:/skinml@champion")
    parser.add_argument("--images", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each way at the first size")
    parser.add_argument("--ways", nargs="+", choices=list(WAYS), default=list(WAYS))
    args = parser.parse_args()
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SKINML_ENGINE": "auto", "TF_CPP_MIN_LOG_LEVEL": "3"}
    with tempfile.TemporaryDirectory(prefix="skinml-batch-") as tmp:
        for size_index, count in enumerate(args.images):
            folder = image_folder(Path(args.data_dir), count, Path(tmp))
            print(f"{count} images ({sum(f.stat().st_size for f in folder.iterdir()) / 1e6:.1f} MB)")
            results = {}
            for way in args.ways:
                runs = []
                for repeat in range(args.repeats if size_index == 0 else 1):
                    output = Path(tmp) / f"{way}-{count}-{repeat}.out"
                    runs.append(run_way(way, args.model_uri, folder, output, env))
                    shutil.rmtree(output, ignore_errors=True) if output.is_dir() else output.unlink(missing_ok=True)
                rate = statistics.median(run["rows_per_s"] for run in runs)
                peak = statistics.median(run["peak_mb"] for run in runs)
                results[way] = rate
                extra = ""
                if "partitions" in runs[0]:
                    warm = statistics.median(run["warm_rows_per_s"] for run in runs)
                    extra = f", {runs[0]['partitions']} partitions; again on its started workers: {warm:.1f} rows/s"
                rates = ", ".join(f"{run['rows_per_s']:.1f}" for run in runs)
                print(f"  {way:8s} {rate:6.1f} rows/s (runs: {rates}), peak memory {peak:,.0f} MB{extra}")
            if "skinml" in results:
                for way, rate in results.items():
                    print(f"  skinml predict / {way}: {results['skinml'] / rate:.2f}x")
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
