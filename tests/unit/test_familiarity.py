"""Familiarity: the distance to the k-th nearest training image, a threshold chosen on validation, shipped with the
model, served (`unfamiliar`, always deferred, no referral), counted by evaluation; a model logged without it still
serves."""

import dataclasses
import io
import logging

import mlflow
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from skinml.core.names import PREDICTIONS_ARTIFACT
from skinml.core.recipe import TrainConfig
from skinml.data.dataset import load_dataset
from skinml.evaluation import familiarity as familiarity_module
from skinml.evaluation.familiarity import Familiarity, fit_familiarity
from skinml.stages.evaluate import evaluate
from skinml.stages.train import train
from skinml.tracking.logged_model import LoggedModel
from skinml.tracking.model_store import load_classifier, load_model, log_classifier, request_frame
from skinml.training.representations import image_representations

from ..conftest import IMAGE_SIZE


def test_the_threshold_keeps_the_target_share_of_validation_familiar():
    rng = np.random.default_rng(0)
    centre = rng.normal(size=64)
    train, val = centre + rng.normal(size=(500, 64)), centre + rng.normal(size=(400, 64))
    familiarity = fit_familiarity(train, val, target_familiar=0.9)
    assert familiarity.reference.dtype == np.float16 and familiarity.reference.shape == (500, 64)
    assert np.allclose(np.linalg.norm(familiarity.reference.astype(np.float32), axis=1), 1.0, atol=1e-3)
    assert familiarity.unfamiliar(familiarity.distances(val)).mean() == pytest.approx(0.1, abs=0.01)
    far = -centre + rng.normal(size=(20, 64))  # the opposite direction: nothing like the training images
    assert familiarity.unfamiliar(familiarity.distances(far)).all()
    np.testing.assert_allclose(familiarity.distances(val[:5] * 7), familiarity.distances(val[:5]), rtol=1e-6)
    loaded = Familiarity.load(io.BytesIO(familiarity.to_bytes()))
    assert loaded.threshold == familiarity.threshold and np.array_equal(loaded.reference, familiarity.reference)


def test_the_reference_is_bounded(monkeypatch):
    monkeypatch.setattr(familiarity_module, "MAX_REFERENCE", 100)
    rng = np.random.default_rng(1)
    familiarity = fit_familiarity(rng.normal(size=(1000, 8)), rng.normal(size=(50, 8)))
    assert familiarity.reference.shape == (100, 8)
    assert familiarity.summary()["reference_images"] == 100


def page_of_text() -> bytes:
    """A white page of black text: nothing like a skin lesion (nor like the synthetic classes)."""
    page = Image.new("RGB", (64, 48), "white")
    draw = ImageDraw.Draw(page)
    for line in range(4):
        draw.text((2, 2 + 11 * line), "lorem ipsum", fill="black")
    data = io.BytesIO()
    page.save(data, format="PNG")
    return data.getvalue()


@pytest.fixture
def trained(synthetic_dir, test_weights):
    config = TrainConfig(
        weights=test_weights, image_size=IMAGE_SIZE, epochs=3, cached_views=1, target_balanced_accuracy=0.05
    )
    return train(config, synthetic_dir)


def test_a_page_of_text_is_unfamiliar_deferred_and_gets_no_referral(trained, synthetic_dir):
    """The tests' random backbone gives no meaningful distances between kinds of image (docs/results.md has the real
    ones), so the model here keeps as its reference exactly the images it is asked about (their nearest neighbour:
    themselves), with a threshold of 0.05: those are familiar, and a page of text, unlike any of them, is not."""
    info = LoggedModel.resolve(trained["model_uri"])
    summary = mlflow.models.get_model_info(trained["model_uri"]).metadata["skinml_familiarity"]
    assert summary["target_familiar"] == 0.99 and summary["reference_images"] > 0 and info.decisions
    classifier, _ = load_classifier(trained["model_uri"])
    paths = load_dataset(synthetic_dir)["path"].tolist()[:6]
    own = image_representations(classifier, paths)
    nearest = fit_familiarity(own, own, train_labels=np.arange(len(own)))  # one image per class: k = 1
    strict = dataclasses.replace(nearest, threshold=0.05)
    with mlflow.start_run():
        logged = log_classifier(classifier, tuple(trained["classes"]), info.decisions, familiarity=strict)
    model = load_model(logged.model_uri)
    answer = model.predict(request_frame([*[open(path, "rb").read() for path in paths], page_of_text()]))
    assert {"familiarity_distance", "unfamiliar", "defer", "refer"} <= set(answer.columns)
    assert answer["unfamiliar"].tolist() == [False] * 6 + [True]
    assert answer["defer"].iloc[-1] and answer["refer"].iloc[-1] is None  # deferred, and no referral decision
    assert answer["refer"].iloc[:-1].map(lambda refer: isinstance(refer, bool)).all()
    assert (answer["unfamiliar"] == (answer["familiarity_distance"] > strict.threshold)).all()
    schema = {column.name for column in model.metadata.get_output_schema().inputs}
    assert {"familiarity_distance", "unfamiliar"} <= schema


def test_evaluation_counts_the_flagged_images_and_the_figures_without_them(trained):
    report = evaluate(trained["model_uri"])
    figures = report["familiarity"]
    assert 0 <= figures["unfamiliar_share"] <= 1 and figures["n_unfamiliar"] == round(
        figures["unfamiliar_share"] * report["n_images"]
    )
    logged = mlflow.get_run(report["run_id"]).data.metrics
    assert logged["test_unfamiliar_share"] == pytest.approx(figures["unfamiliar_share"])
    if figures["familiar"]:
        assert logged["test_familiar_balanced_accuracy"] == pytest.approx(figures["familiar"]["balanced_accuracy"])
    predictions = pd.read_csv(
        io.StringIO(mlflow.artifacts.load_text(f"runs:/{report['run_id']}/{PREDICTIONS_ARTIFACT}"))
    )
    assert int(predictions["unfamiliar"].sum()) == figures["n_unfamiliar"]


def test_a_model_logged_without_familiarity_still_serves_and_says_so(trained, caplog):
    classifier, familiarity = load_classifier(trained["model_uri"])
    assert isinstance(familiarity, Familiarity)
    with mlflow.start_run():
        old = log_classifier(classifier, tuple(trained["classes"]))  # as models were logged before
    with caplog.at_level(logging.WARNING):
        model = load_model(old.model_uri)
    assert "logged before skinml scored familiarity" in caplog.text
    answer = model.predict(request_frame([page_of_text()]))
    assert "unfamiliar" not in answer.columns and answer["label"].iloc[0] in trained["classes"]
