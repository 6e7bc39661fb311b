"""Model integrity: a digest of a model's files (weights, bundled code, MLmodel, environment) recorded on its registry
version at registration, and checked before the model is loaded. See docs/security.md for what it does and does not
protect against."""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from skinml.core.errors import UserError
from skinml.core.names import DIGEST_TAG

MODEL_META = "registered_model_meta"  # written by MLflow < 3.18 beside a registered version it downloads
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


def check_files(model_dir: str | Path, versions: list[ModelVersion], fresh: bool = True) -> None:
    """Refuse (ModelIntegrityError) a downloaded copy of registered `versions` (of one logged model) whose files differ
    from those registered. `fresh`: the copy was just downloaded, so it may not hold bytecode caches either (they
    would run in place of the bundled sources)."""
    digest = None  # of the copy: computed once, for the first version with a recorded digest
    for version in versions:
        name = f"model {version.name} version {version.version}"
        expected = version.tags.get(DIGEST_TAG)
        if expected is None:
            logger.warning(
                "%s has no %s tag (registered before skinml recorded digests): its files are not verified",
                name,
                DIGEST_TAG,
            )
            continue
        if fresh and any(Path(model_dir).rglob("__pycache__")):
            raise ModelIntegrityError(
                f"{name}: its artifacts hold Python bytecode caches, which no logged model has: "
                "refusing to load it (docs/security.md)"
            )
        digest = digest or files_digest(model_dir)
        if digest != expected:
            raise ModelIntegrityError(
                f"{name}: its files no longer match the digest recorded when it was registered "
                f"({DIGEST_TAG}): refusing to load it (docs/security.md)"
            )


def files_stamp(folder: str | Path) -> tuple:
    """What changes when a model folder's files do: each file's name, size and modification time (Python's bytecode
    caches, which the workers loading one folder write as they import its code, left out)."""
    folder, stamp = Path(folder), []
    for path in folder.rglob("*"):
        if "__pycache__" not in path.parts:
            try:
                status = path.stat()
            except FileNotFoundError:  # removed as we walked
                continue
            stamp.append((path.relative_to(folder).as_posix(), status.st_size, status.st_mtime_ns))
    return tuple(sorted(stamp))


# The folder this process checked last, and its files' stamp: a folder is checked once while its files stay the same
# (spark_udf in local mode loads the model for every partition from one folder; skinml's own loading checks its
# download just before the model's loader runs).
last_checked: dict[str, tuple] = {}


def remember_checked(model_dir: str | Path, stamp: tuple) -> None:
    """Record `model_dir` with the stamp of its files as just checked (check_served_copy will not check it again)."""
    last_checked.clear()
    last_checked[str(Path(model_dir).resolve())] = stamp


def verified_copy(model_uri: str, folder: str | Path) -> str:
    """Download the model into `folder` and, for a registered version, check its files before anything of it is
    loaded; returns the local path to load from."""
    local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(folder))
    version = registered_version(model_uri)
    if version is not None:
        check_files(local, [version])
        remember_checked(local, files_stamp(local))
    return local


def store_exists(store_uri: str) -> bool:
    """Whether a local tracking or registry store is there (MLflow creates a missing `sqlite:` database or `file:`
    folder as soon as it is asked); a server is assumed to be."""
    parsed = urlparse(store_uri)
    if parsed.scheme == "sqlite":
        return Path(store_uri.removeprefix("sqlite:///")).is_file()
    if parsed.scheme in ("", "file"):
        return Path(parsed.path or store_uri).exists()
    return True


def registered_versions_of(model_dir: str | Path) -> list[ModelVersion]:
    """The registry versions made from the logged model a copy was downloaded from (its MLmodel's `model_id`): none
    when it names no logged model or the registry store does not exist here."""
    model_id = Model.load(str(model_dir)).model_id
    if not model_id or not store_exists(mlflow.get_registry_uri()):
        return []
    return MlflowClient().search_model_versions(f"source_path = 'models:/{model_id}'")


def check_served_copy(model_dir: str | Path, stamp: tuple) -> None:
    """Inside the loaded model (`mlflow models serve -m models:/...`, spark_udf, pyfunc.load_model of a path): when
    its logged model is registered, check the copy's files (whose files_stamp is `stamp`) against the registered
    versions' digests, unless this process just checked them. A registry that cannot be reached is reported and the
    copy loaded unchecked, as for a model never registered."""
    if last_checked.get(str(Path(model_dir).resolve())) == stamp:
        return
    try:
        versions = registered_versions_of(model_dir)
    except MlflowException as error:
        logger.warning("the registry could not be reached, this model's files are not verified: %s", error)
        return
    check_files(model_dir, versions, fresh=False)
    remember_checked(model_dir, stamp)
