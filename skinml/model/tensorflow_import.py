"""Importing TensorFlow without its loading lines on the terminal."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def stderr_to_devnull() -> Iterator[None]:
    """Send file descriptor 2 (where C++ libraries write) to /dev/null for the duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its loading lines discarded (TF_CPP_MIN_LOG_LEVEL does not reach the absl, oneDNN and
    CUDA lines TensorFlow 2.20 writes while it loads) and its C++ log limited to fatal errors, unless the environment
    sets TF_CPP_MIN_LOG_LEVEL. A failing import still raises, with its message, once stderr is back."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with stderr_to_devnull():
        import tensorflow  # noqa: F401
