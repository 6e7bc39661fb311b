"""What every real-data benchmark is given: the HAM10000 folder and the MobileNetV2 weights."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from skinml.core.privacy import opt_out_exports


def benchmark_parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the benchmark's docstring as help and the required --data-dir and --weights."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="the HAM10000 folder (metadata CSV and images)")
    parser.add_argument("--weights", required=True, help="ImageNet MobileNetV2 weights: imagenet or a file path")
    return parser


def weights_argument(text: str) -> str:
    """imagenet | none as given; a weights file made absolute (the benchmark may work in another folder)."""
    return text if text in ("imagenet", "none") else str(Path(text).resolve())


def isolated_store(workdir: str | None, prefix: str) -> tuple[Path, dict[str, str]]:
    """A work folder (`workdir`, else a new temporary one) and the environment for `skinml` processes that keeps
    their MLflow store and feature cache in it, as a user who followed the README has it."""
    folder = Path(workdir or tempfile.mkdtemp(prefix=prefix)).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    # the telemetry switches a README user exports for MLflow's and Prefect's own commands (`mlflow run`)
    return folder, {
        **os.environ,
        **opt_out_exports(),
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "SKINML_CACHE_DIR": str(folder / "cache"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        # `mlflow run` starts `python`: this Python's, with skinml, even from an unactivated shell
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }


def synthetic_parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser for a benchmark that needs any labelled folder: --data-dir (default: a synthetic one, see
    data_folder), --weights (default none), --image-size (default 32) and --repeats (default 5)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="a labelled folder (default: a synthetic one)")
    parser.add_argument("--weights", default="none", help="imagenet | none | a weights file")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    return parser


def data_folder(data_dir: str | None, prefix: str) -> Path:
    """`data_dir` made absolute, or a new small synthetic HAM10000-like folder (12 images a class)."""
    if data_dir:
        return Path(data_dir).resolve()
    from skinml.data.synthetic import make_synthetic_ham

    return make_synthetic_ham(Path(tempfile.mkdtemp(prefix=prefix)) / "data", n_per_class=12)
