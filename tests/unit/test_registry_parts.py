"""The evidence behind a promotion (skinml.registry.evidence) and the model card (skinml.registry.model_card), from
small synthetic predictions and a tiny model trained, evaluated and registered here."""

import mlflow
import numpy as np
import pandas as pd
import pytest

from skinml.core.errors import DataError
from skinml.core.names import EVAL_DATA_TAG, PREDICTIONS_ARTIFACT
from skinml.core.recipe import TrainConfig
from skinml.data.synthetic import make_synthetic_isic
from skinml.registry.evidence import compare, evaluations_filter, logged_predictions, predictions_for
from skinml.registry.model_card import LIMITS_TEXT, PLOTS, USE_TEXT, card_markdown, write_card
from skinml.registry.versions import register
from skinml.stages.evaluate import evaluate
from skinml.stages.train import train
from skinml.tracking.logged_model import LoggedModel
from skinml.tracking.runs import download_run_artifact
from skinml.tracking.splits import run_manifest

from ..conftest import IMAGE_SIZE

IMAGES = pd.DataFrame(
    {
        "image_id": [f"i{k}" for k in range(6)],
        "dx": ["a", "a", "b", "b", "c", "c"],
        "lesion_id": ["l0", "l0", "l1", "l2", "l3", "l4"],
    }
)


def text_headings(path) -> list[str]:
    """The section headings of a text the card takes from the repository."""
    return [line for line in path.read_text().splitlines() if line.startswith("## ")]


def test_compare_scores_both_models_on_the_same_images_with_a_paired_interval():
    champion = pd.Series(["a", "b", "b", "b", "c", "a"])  # recalls 1/2, 1, 1/2
    challenger = pd.Series(["a", "a", "b", "b", "c", "c"])  # every image right
    evidence = compare(IMAGES, champion, challenger)
    assert evidence["champion_balanced_accuracy"] == pytest.approx(2 / 3)
    assert evidence["challenger_balanced_accuracy"] == pytest.approx(1.0)
    assert evidence["difference"] == pytest.approx(1 / 3)
    assert evidence["n_images"] == 6 and evidence["n_lesions"] == 5
    low, high = evidence["difference_ci95"]
    assert 0 <= low <= evidence["difference"] <= high <= 1  # never worse on any resample: it is right everywhere
    assert high > 0


def test_the_same_predictions_differ_by_nothing():
    same = pd.Series(["a", "b", "b", "b", "c", "a"])
    evidence = compare(IMAGES, same, same)
    assert evidence["difference"] == 0 and evidence["difference_ci95"] == [0.0, 0.0]


def test_a_class_the_truth_never_has_is_a_wrong_answer():
    evidence = compare(IMAGES, pd.Series(["a", "a", "b", "b", "c", "zzz"]), pd.Series(list(IMAGES["dx"])))
    assert evidence["champion_balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)


def test_the_evaluations_filter_names_the_model_and_the_time():
    assert evaluations_filter("models:/m-1", 123) == (
        "tags.`skinml.stage` = 'evaluate' and attributes.status = 'FINISHED' and "
        "tags.`skinml.model_uri` = 'models:/m-1' and attributes.start_time >= 123"
    )


def test_a_trained_evaluated_registered_model_has_evidence_and_a_card(synthetic_dir, test_weights, tmp_path, subtests):
    config = TrainConfig(
        weights=test_weights,
        image_size=IMAGE_SIZE,
        epochs=1,
        cached_views=1,
        batch_size=16,
        target_balanced_accuracy=0.05,
    )
    trained = train(config, synthetic_dir)
    model = LoggedModel.resolve(trained["model_uri"])

    with subtests.test("a card before any evaluation"):
        text, test_run_id = card_markdown(model)
        assert test_run_id is None
        assert text.startswith(f"# Model card: `{trained['model_uri']}`\n")
        assert "## Intended use" in text and "## Training data" in text and "## Known limits" in text
        assert "Not evaluated yet: `skinml evaluate --model-uri URI` logs the figures." in text
        assert "## External evaluations\n\nNone logged." in text and "## Slices" not in text

    tested = evaluate(trained["model_uri"])
    metrics = mlflow.get_run(tested["run_id"]).data.metrics
    with subtests.test("a card of the evaluated model: its sections and figures are the evaluation's"):
        text, test_run_id = card_markdown(model)
        assert test_run_id == tested["run_id"]
        headings = [line for line in text.splitlines() if line.startswith("## ")]
        expected = [
            *text_headings(USE_TEXT),
            "## Training data",
            "## Figures",
            "## Slices",
            "## Calibration",
            "## Decisions",
            "## External evaluations",
            *text_headings(LIMITS_TEXT),
        ]
        assert [heading for heading in headings if heading in expected] == expected  # in this order, once each
        assert headings[: len(text_headings(USE_TEXT))] == text_headings(USE_TEXT)
        assert headings[-len(text_headings(LIMITS_TEXT)) :] == text_headings(LIMITS_TEXT)
        low, high = metrics["test_balanced_accuracy_ci95_low"], metrics["test_balanced_accuracy_ci95_high"]
        assert f"- balanced accuracy {metrics['test_balanced_accuracy']:.3f} [{low:.3f}, {high:.3f}]" in text
        assert f"Expected calibration error on test {metrics['test_ece']:.3f}" in text
        assert f"evaluation run `{tested['run_id']}`" in text and f"training run `{trained['run_id']}`" in text
        for name in model.classes:
            assert f"| {name} | {metrics[f'test_precision/{name}']:.3f} | " in text
        assert "Refer when P(akiec+bcc+mel) is at or above" in text
        assert "from random weights" not in text  # a weights file: pretrained, as the card says
        for plot in PLOTS:
            assert f"]({plot})" in text
        assert "Classes with fewer than 30 test images" in text  # a dozen images per class

    with subtests.test("the written card holds the evaluation's plots"):
        written = write_card(model, tmp_path / "card")
        assert written == {
            "markdown": str(tmp_path / "card" / "model_card.md"),
            "html": str(tmp_path / "card" / "model_card.html"),
        }
        assert (tmp_path / "card" / "model_card.md").read_text() == text
        for plot in PLOTS:
            logged = download_run_artifact(tested["run_id"], f"plots/{plot}").read_bytes()
            assert (tmp_path / "card" / plot).read_bytes() == logged
        html = (tmp_path / "card" / "model_card.html").read_text()
        assert html.count("data:image/png;base64,") == len(PLOTS) and "<table>" in html
        assert "<h2>Decisions</h2>" in html and "](reliability_diagram.png)" not in html

    external = evaluate(trained["model_uri"], data_dir=make_synthetic_isic(tmp_path / "isic", n_per_class=2))
    with subtests.test("an external evaluation is listed, the test figures stay the test split's"):
        text, test_run_id = card_markdown(model)
        assert test_run_id == tested["run_id"]
        external_run = mlflow.get_run(external["run_id"]).data
        listed = [line for line in text.splitlines() if line.startswith(f"- `{external_run.tags[EVAL_DATA_TAG]}` (")]
        assert len(listed) == 1 and "(14 images" in listed[0]
        assert f"): balanced accuracy {external_run.metrics['test_balanced_accuracy']:.3f} [" in listed[0]
        assert "None logged." not in text

    registered = register(trained["model_uri"], "skinml", tested)
    version = mlflow.MlflowClient().get_model_version("skinml", registered["version"])
    manifest = run_manifest(trained["run_id"])
    test_images = manifest.loc[manifest["split"] == "test", ["image_id", "dx", "lesion_id"]].reset_index(drop=True)
    table = pd.read_csv(download_run_artifact(tested["run_id"], PREDICTIONS_ARTIFACT), dtype=str)
    calls = []

    def score(model_uri: str) -> str:
        calls.append(model_uri)
        return tested["run_id"]

    with subtests.test("the predictions of the registered version come from its evaluation"):
        predicted, run_id = predictions_for("skinml", version, test_images, score)
        assert run_id == tested["run_id"] and calls == []  # stored: no new evaluation
        assert predicted.tolist() == table.set_index("image_id").loc[test_images["image_id"], "predicted"].tolist()
        shuffled = test_images.sample(frac=1, random_state=0).reset_index(drop=True)
        again, _ = predictions_for("skinml", version, shuffled, score)
        assert again.tolist() == table.set_index("image_id").loc[shuffled["image_id"], "predicted"].tolist()
        evidence = compare(test_images, predicted, predicted)
        assert evidence["n_images"] == len(test_images) and evidence["difference"] == 0

    with subtests.test("images no evaluation scored are scored once, and must be those scored"):
        fewer = test_images.iloc[1:].reset_index(drop=True)
        assert logged_predictions(tested["run_id"], fewer) is None
        with pytest.raises(
            DataError, match=f"evaluation run {tested['run_id']} of skinml v1 did not score the champion's test split"
        ):
            predictions_for("skinml", version, fewer, score)
        assert calls == ["models:/skinml/1"]
        relabelled = test_images.assign(dx=np.where(test_images.index == 0, "other", test_images["dx"]))
        assert logged_predictions(tested["run_id"], relabelled) is None  # same images, another label

    with subtests.test("the card of the registered version finds the same evaluation"):
        text, test_run_id = card_markdown(LoggedModel.resolve("models:/skinml/1"))
        assert test_run_id == tested["run_id"] and text.startswith("# Model card: `models:/skinml/1`")
