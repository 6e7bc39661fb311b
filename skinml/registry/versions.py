"""Registered versions: register a logged model under the name of its label set, tag and describe it, and the
aliases `champion` / `challenger` (a new version becomes `challenger`, and `champion` when there is none). Which
version becomes champion later is the promotion rule's (skinml.registry.promotion)."""

from __future__ import annotations

import logging

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from skinml.core.labels import label_set_slug
from skinml.core.names import (
    CHAMPION_MARK,
    CHAMPION_TAG,
    DIGEST_TAG,
    TEST,
    VERSION_CLASSES,
    VERSION_DATA_DIR,
    VERSION_DATA_FINGERPRINT,
    VERSION_DECISIONS,
    VERSION_FAMILIARITY,
    VERSION_MANIFEST_SHA256,
    VERSION_RUN_ID,
    metric_name,
)
from skinml.core.recipe import DEFAULT_MODEL_NAME
from skinml.data.split import manifest_digest
from skinml.evaluation.decisions import decisions_text
from skinml.evaluation.familiarity import familiarity_sentence
from skinml.registry.model_card import CARD_ARTIFACTS, log_card
from skinml.serving.integrity import model_files_digest
from skinml.tracking.logged_model import LoggedModel
from skinml.tracking.splits import run_manifest

CHAMPION, CHALLENGER = "champion", "challenger"
MODEL_DESCRIPTION = (
    "MobileNetV2 (ImageNet, transfer learning) classifying skin-lesion images into the {n} classes of its training "
    "data: {classes}. Input: a column `image` of base64-encoded JPEG/PNG files, any size; output: "
    "a probability per class (columns named by class) and `label`, the predicted class. Serve the champion with "
    "`mlflow models serve -m models:/{name}@champion --env-manager local`. Aliases: `challenger` is the newest "
    "version, `champion` the one "
    "the promotion rule chose (a gain in balanced accuracy on the champion's lesion-grouped test split whose 95% "
    "paired lesion-bootstrap interval lies above the margin)."
)


def version_by_alias(name: str, alias: str):
    """The model version holding `alias`, or None."""
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def register(model_uri: str, name: str = DEFAULT_MODEL_NAME, metrics: dict | None = None) -> dict:
    """Register `model_uri` as a new version tagged with its run, data and split; alias it `challenger`
    (and `champion` when there is none). Returns {name, version, aliases}."""
    model = LoggedModel.resolve(model_uri)
    run_id, classes = model.training_run_id, model.classes
    run = mlflow.get_run(run_id)
    manifest = run_manifest(run_id)
    name = name_for_classes(name, classes)
    tags = {
        VERSION_RUN_ID: run_id,
        VERSION_DATA_DIR: run.data.params.get("data_dir", ""),
        VERSION_CLASSES: ",".join(classes),
        VERSION_MANIFEST_SHA256: manifest_digest(manifest),
        VERSION_DATA_FINGERPRINT: manifest_digest(manifest[["image_id", "lesion_id", "dx"]].assign(split="")),
    }
    tags.update({metric_name(TEST, k): f"{v:.6g}" for k, v in (metrics or {}).items() if isinstance(v, (int, float))})
    if (metrics or {}).get("decisions"):  # chosen on validation, scored on test (skinml.evaluation.decisions)
        tags[VERSION_DECISIONS] = decisions_text(metrics["decisions"])
    if (metrics or {}).get("familiarity"):  # on test (skinml.evaluation.familiarity)
        tags[VERSION_FAMILIARITY] = familiarity_sentence(metrics["familiarity"])
    tags[DIGEST_TAG] = model_files_digest(model_uri)  # checked before the version is loaded (skinml.serving.integrity)
    version = mlflow.register_model(model_uri, name, tags=tags).version
    client = MlflowClient()
    client.update_registered_model(
        name, description=MODEL_DESCRIPTION.format(name=name, n=len(classes), classes=", ".join(classes))
    )
    describe_version(name, version)
    client.set_registered_model_alias(name, CHALLENGER, version)
    aliases = [CHALLENGER]
    if version_by_alias(name, CHAMPION) is None:
        client.set_registered_model_alias(name, CHAMPION, version)
        mark_champion(client.get_model_version(name, version))
        aliases.append(CHAMPION)
    try:  # model_card/ among the training run's artifacts; a card that fails must not undo the registration
        log_card(f"models:/{name}/{version}")
    except Exception as exc:  # noqa: BLE001  any failure: said, and `skinml card` writes it again
        logging.getLogger(__name__).warning(
            "the model card of %s v%s was not written (%s: %s); `skinml card models:/%s/%s` writes it",
            name,
            version,
            type(exc).__name__,
            exc,
            name,
            version,
        )
    return {"name": name, "version": str(version), "aliases": aliases}


def version_aliases(name: str, version: str) -> list[str]:
    """The aliases a registered version holds now (after a promotion moved `champion`), sorted."""
    return sorted(MlflowClient().get_model_version(name, version).aliases)


def name_for_classes(name: str, classes: tuple[str, ...]) -> str:
    """The registered name for a model of `classes`: `name`, unless its champion answers with other classes (promotion
    compares models of one task); then `name` followed by the classes (`skinml-bkl-mel-nv`, labels.label_set_slug),
    said in the log."""
    champion = version_by_alias(name, CHAMPION)
    if champion is None or LoggedModel.resolve(f"models:/{name}/{champion.version}").classes == classes:
        return name
    own = f"{name}-{label_set_slug(classes)}"
    logging.getLogger(__name__).warning(
        "%s's champion answers with other classes than this model's %s: registered as %s instead",
        name,
        list(classes),
        own,
    )
    return own


def describe_version(name: str, version: str, promotion: str | None = None) -> None:
    """Write a version's description from what it is tagged with: recipe (its training run's name), run, split
    digest, test figures, and the promotion rule's last decision when given."""
    client = MlflowClient()
    tags = client.get_model_version(name, version).tags
    run_id = tags[VERSION_RUN_ID]
    recipe = mlflow.get_run(run_id).info.run_name.removeprefix("train ")
    figures = ", ".join(
        f"{k.replace('_', ' ')} {float(v):.3f}" for k, v in tags.items() if k.startswith(metric_name(TEST, ""))
    )
    classes = tags.get(VERSION_CLASSES, "").replace(",", ", ")
    decisions = tags.get(VERSION_DECISIONS)
    text = (
        f"Classes: {classes or 'the seven of HAM10000'}. Recipe `{recipe}` (run `{run_id}`); "
        f"split manifest sha256 `{tags[VERSION_MANIFEST_SHA256][:12]}`; "
        f"{figures or 'not evaluated'}."
        + (f" Decisions, on test: {decisions}." if decisions else "")
        + (f" Familiarity, on test: {tags[VERSION_FAMILIARITY]}." if VERSION_FAMILIARITY in tags else "")
        + (f" Promotion: {promotion}." if promotion else "")
        + f" Model card: `{CARD_ARTIFACTS}/model_card.html` among the artifacts of run `{run_id}` "
        f"(`skinml card models:/{name}/{version}` writes it again)."
    )
    client.update_model_version(name, version, description=text)


def mark_champion(new, former=None) -> None:
    """The run tag `skinml.champion` = `yes` on the training run (and its parent) of the new champion version, and
    none on the former's; the parent's name starts with `★ ` (CHAMPION_MARK) while it holds the champion: the MLflow
    UI's run list and charts show which run is the champion."""
    client = MlflowClient()
    for version, mark in ((former, None), (new, "yes")):
        if version is None:
            continue
        try:  # a deleted run refuses tags: the mark is a display, the alias has moved already
            run = client.get_run(version.run_id)
            run_ids = [run_id for run_id in (run.info.run_id, run.data.tags.get("mlflow.parentRunId")) if run_id]
            for run_id in run_ids:
                if mark:
                    client.set_tag(run_id, CHAMPION_TAG, mark)
                elif CHAMPION_TAG in client.get_run(run_id).data.tags:
                    client.delete_tag(run_id, CHAMPION_TAG)
            if len(run_ids) == 2:  # a pipeline's or retrain's parent: the run its list shows
                name = (client.get_run(run_ids[1]).info.run_name or "").removeprefix(CHAMPION_MARK)
                client.update_run(run_ids[1], name=CHAMPION_MARK + name if mark else name)
        except MlflowException as exc:
            logging.getLogger(__name__).warning("could not mark the champion's runs (%s): %s", CHAMPION_TAG, exc)
