"""Every `SKINML_*` environment variable: its default, its meaning, and the one place that reads and checks it.

No other module reads one (tests/unit/test_settings.py holds that); docs/operations.md's table is checked against
SETTINGS.
A value that does not parse is an error naming the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from skinml.core.errors import OptionError


@dataclass(frozen=True)
class Setting:
    name: str
    default: str  # "" when unset means "computed" (the meaning says how)
    meaning: str
    choices: tuple[str, ...] = ()


ENGINES = ("auto", "openvino", "tensorflow")
PRECISIONS = ("f32", "bf16")
DATAVERSE_URL = "https://dataverse.harvard.edu"
KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
TELEMETRY = "SKINML_TELEMETRY"
# written by skinml/core/processes.py into the environment of the processes a command starts
OWNER_PID = "SKINML_OWNER_PID"

SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("SKINML_DATA_DIR", "", "where `skinml download` puts HAM10000 (default `~/.cache/skinml/ham10000`)"),
        Setting("SKINML_DATAVERSE_URL", DATAVERSE_URL, "the Dataverse server HAM10000 is downloaded from"),
        Setting("SKINML_WEIGHTS_URL", KERAS_WEIGHTS_URL, "where `--weights imagenet` downloads MobileNetV2's file"),
        Setting("SKINML_CACHE_DIR", "", "the feature cache (default `~/.cache/skinml/features`)"),
        Setting(
            "SKINML_ENGINE", "auto", "where the frozen backbone runs: OpenVINO on a CPU, TensorFlow on a GPU", ENGINES
        ),
        Setting(
            "SKINML_PRECISION",
            "f32",
            "the backbone's precision; bf16 only where the CPU computes it natively",
            PRECISIONS,
        ),
        Setting("SKINML_SERVE_MAX_ROWS", "64", "images per request the served model accepts"),
        Setting("SKINML_SERVE_MAX_IMAGE_BYTES", "8000000", "bytes per image the served model accepts"),
        Setting("SKINML_SERVE_MAX_REQUEST_BYTES", "32000000", "bytes of all images of one request (base64)"),
        Setting(
            "SKINML_SWEEP_STORAGE", "", "the Optuna storage `skinml sweep` uses by default (deploy/stack prints it)"
        ),
        Setting(
            "SKINML_SWEEP_HEARTBEAT_SECONDS",
            "30",
            "seconds between a sweep trial's heartbeats; a trial silent for 4 is marked failed and retried",
        ),
        Setting(
            "SKINML_REPO_DIR",
            "",
            "read by prefect.yaml: the checkout of this repository a Prefect worker runs the retrain flow from",
        ),
        Setting(TELEMETRY, "off", "`on`: dependencies keep their own usage-data defaults (skinml sends none)"),
        Setting(OWNER_PID, "", "set by skinml for the processes it starts: which skinml process owns them"),
    )
}


def raw(name: str) -> str:
    """The variable's value, else its default."""
    return os.environ.get(name) or SETTINGS[name].default


def choice(name: str, requested: str | None = None) -> str:
    """`requested`, else the variable, else its default; a value outside the setting's choices is an error."""
    value = requested or raw(name)
    allowed = SETTINGS[name].choices
    if value not in allowed:
        raise OptionError(f"{value!r} (from an option or ${name}) is unknown; use one of {', '.join(allowed)}")
    return value


def positive_int(name: str) -> int:
    """The variable as a whole number above 0."""
    value = raw(name)
    if not value.strip().isdigit() or int(value) < 1:
        raise OptionError(f"${name}={value!r} is not a whole number above 0")
    return int(value)


def optional(name: str) -> str | None:
    """The variable's value, or None when it is unset or empty."""
    return os.environ.get(name) or None


def user_cache(name: str, folder: str) -> Path:
    """The variable's folder, else `folder` under the user's cache ($XDG_CACHE_HOME or ~/.cache) /skinml."""
    if os.environ.get(name):
        return Path(os.environ[name]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "skinml" / folder


def telemetry_opted_in() -> bool:
    """True when the user asked for the dependencies' own telemetry defaults (`SKINML_TELEMETRY=on`)."""
    return raw(TELEMETRY).strip().lower() in ("on", "true", "1", "yes")
