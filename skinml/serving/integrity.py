"""Model integrity: a digest of a model's files (weights, bundled code, MLmodel, environment) recorded on its registry
version at registration, and checked before the model is loaded. See docs/security.md for what it does and does not
protect against."""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
from pathlib import Path

import mlflow
import yaml
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from skinml.core.errors import UserError
from skinml.core.names import DIGEST_TAG

MODEL_META = "registered_model_meta"  # written by MLflow into a registered version it downloads; not a model file
REGISTERED_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))/?$")
logger = logging.getLogger(__name__)


class ModelIntegrityError(UserError, ValueError):
    """A registered model whose files are not those it was registered with."""


def files_digest(model_dir: str | Path) -> str:
    """SHA-256 over every file of a model folder (its relative path and contents), in a fixed order. Python's
    bytecode caches, written when the bundled code is imported, and MLflow's download note are left out."""
    model_dir = Path(model_dir)
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(model_dir)
        if relative.as_posix() == MODEL_META or "__pycache__" in relative.parts:
            continue
        digest.update(relative.as_posix().encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def model_files_digest(model_uri: str) -> str:
    """The digest of a logged model's files as they are in the artifact store."""
    with tempfile.TemporaryDirectory(prefix="skinml-digest-") as tmp:
        return files_digest(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))


def registered_version(model_uri: str) -> ModelVersion | None:
    """The registry version a `models:/name@alias` or `models:/name/N` URI names; None for any other URI."""
    match = REGISTERED_URI.match(model_uri)
    if not match:
        return None
    client = MlflowClient()
    if match["alias"]:
        return client.get_model_version_by_alias(match["name"], match["alias"])
    return client.get_model_version(match["name"], match["version"])


def check_files(model_dir: str | Path, version: ModelVersion, fresh: bool = True) -> None:
    """Refuse (ModelIntegrityError) a downloaded copy of `version` whose files differ from those registered.
    `fresh`: the copy was just downloaded, so it may not hold bytecode caches either (they would run in place of
    the bundled sources)."""
    name = f"model {version.name} version {version.version}"
    expected = version.tags.get(DIGEST_TAG)
    if expected is None:
        logger.warning(
            "%s has no %s tag (registered before skinml recorded digests): its files are not verified", name, DIGEST_TAG
        )
        return
    if fresh and any(Path(model_dir).rglob("__pycache__")):
        raise ModelIntegrityError(
            f"{name}: its artifacts hold Python bytecode caches, which no logged model has: "
            "refusing to load it (docs/security.md)"
        )
    if files_digest(model_dir) != expected:
        raise ModelIntegrityError(
            f"{name}: its files no longer match the digest recorded when it was registered "
            f"({DIGEST_TAG}): refusing to load it (docs/security.md)"
        )


def verified_copy(model_uri: str, folder: str | Path) -> str:
    """Download the model into `folder` and, for a registered version, check its files before anything of it is
    loaded; returns the local path to load from."""
    local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(folder))
    version = registered_version(model_uri)
    if version is not None:
        check_files(local, version)
    (Path(local) / MODEL_META).unlink(missing_ok=True)  # checked here: the model's loader need not check it again
    return local


def check_served_copy(model_dir: str | Path) -> None:
    """Inside the loaded model: when MLflow downloaded it as a registered version (it then writes the version into
    `registered_model_meta`, as for `mlflow models serve -m models:/...`), check its files against the registry."""
    meta = Path(model_dir) / MODEL_META
    if not meta.is_file():
        return  # a model loaded from a path or a run: nothing registered to compare with
    registered = yaml.safe_load(meta.read_text()) or {}
    if not registered.get("model_name") or registered.get("model_version") is None:
        return  # MLflow writes the note for a logged model's URI (models:/m-...) too, with no name
    version = MlflowClient().get_model_version(registered["model_name"], str(registered["model_version"]))
    check_files(model_dir, version, fresh=False)
