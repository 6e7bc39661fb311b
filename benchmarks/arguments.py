"""What every real-data benchmark is given: the HAM10000 folder and the MobileNetV2 weights."""

from __future__ import annotations

import argparse


def benchmark_parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the benchmark's docstring as help and the required --data-dir and --weights."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="the HAM10000 folder (metadata CSV and images)")
    parser.add_argument("--weights", required=True, help="ImageNet MobileNetV2 weights: imagenet or a file path")
    return parser
