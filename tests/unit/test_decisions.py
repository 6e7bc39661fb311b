"""Decisions: the positive group, referral thresholds chosen on validation for target sensitivities, deferral, and
their figures on test with lesion-bootstrap intervals; shipped with the model, served and logged by evaluation."""

import json

import mlflow
import numpy as np
import pytest

from skinml.data.dataset import HAM10000_CLASSES as CLASSES
from skinml.evaluation.decisions import (
    choose,
    decision_metrics,
    decisions_text,
    deferral_confidence,
    defers_everything,
    positive_group,
    referral_figures,
    score,
    threshold_for_sensitivity,
)
from skinml.serving.classifier import answer_frame
from skinml.tracking.logged_model import LoggedModel
from skinml.tracking.model_store import load_model, request_frame, signature


def test_the_positive_group_defaults_to_the_malignant_classes_present():
    assert positive_group(CLASSES) == ("akiec", "bcc", "mel")
    assert positive_group(("bkl", "mel", "nv")) == ("mel",)  # an own-data subset of HAM10000
    assert positive_group(("AK", "BCC", "BKL", "DF", "MEL", "NV", "SCC", "VASC")) == ("AK", "BCC", "MEL", "SCC")
    assert positive_group(("benign", "malignant")) == ("malignant",)
    assert positive_group(("0", "1")) == ("1",)
    assert positive_group(("melanoma", "nevus")) == ("melanoma",)  # not merely the class that sorts second
    assert positive_group(("lesion", "normal")) == ()  # none named like a positive: --positive-classes says
    assert positive_group(("bcc", "mel")) == ()  # every class malignant: nothing to refer against
    assert positive_group(("keratosis", "melanoma", "naevus")) == ("melanoma",)
    assert positive_group(("keratosis", "melanoma", "naevus"), ["melanoma"]) == ("melanoma",)
    with pytest.raises(ValueError, match=r"positive class\(es\) \['scc'\] are not classes of the data"):
        positive_group(CLASSES, ["scc"])


def test_a_threshold_is_the_highest_that_reaches_the_target_sensitivity():
    rng = np.random.default_rng(0)
    is_positive = rng.random(500) < 0.2
    scores = np.clip(rng.normal(np.where(is_positive, 0.6, 0.3), 0.15), 0, 1)
    for target in (0.8, 0.9, 0.95):
        threshold = threshold_for_sensitivity(scores, is_positive, target)
        assert referral_figures(scores, is_positive, threshold)["sensitivity"] >= target
        assert referral_figures(scores, is_positive, threshold + 1e-9)["sensitivity"] < target


def test_deferral_keeps_the_images_that_reach_the_target_balanced_accuracy():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 3, 600)
    confidence = rng.uniform(0.34, 1.0, 600)
    y_pred = np.where(rng.random(600) < confidence, y_true, (y_true + 1) % 3)  # surer: more often right
    threshold = deferral_confidence(confidence, y_true, y_pred, 0.8)
    kept = confidence >= threshold
    assert 0.1 < kept.mean() < 0.9
    assert np.mean([np.mean(y_pred[kept & (y_true == k)] == k) for k in range(3)]) >= 0.8
    assert deferral_confidence(confidence, y_true, (y_true + 1) % 3, 0.8) > 1.0  # never reached: defer all
    # a class that is always wrong and unsure is not kept by deferring it all: it counts, with recall 0
    unsure = np.where(y_true == 2, 0.35, 0.99)
    assert deferral_confidence(unsure, y_true, np.where(y_true == 2, 0, y_true), 0.8) > 1.0


def test_decisions_chosen_on_validation_are_scored_on_test_with_intervals():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 7, 700)
    probs = rng.dirichlet(np.ones(7), 700)
    probs[np.arange(700), y] += 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    decisions = choose(
        probs[:350],
        y[:350],
        CLASSES,
        positive_classes=(),
        target_sensitivities=(0.9, 0.95),
        target_balanced_accuracy=0.8,
    )
    assert decisions["positive_classes"] == ["akiec", "bcc", "mel"]
    assert [p["target_sensitivity"] for p in decisions["operating_points"]] == [0.9, 0.95]
    assert decisions["operating_points"][1]["threshold"] <= decisions["operating_points"][0]["threshold"]
    scored = score(probs[350:], y[350:], CLASSES, decisions, lesions=np.arange(350) // 2, n_resamples=200)
    for point in scored["operating_points"]:
        for figure in ("sensitivity", "specificity", "ppv", "npv", "referral_rate"):
            low, high = point["ci95"][figure]
            assert low <= point[figure] <= high
        assert 0.8 < point["sensitivity"] and point["referral_rate"] > 0.3
    metrics = decision_metrics(scored, "test")
    assert metrics["test_sens90_sensitivity"] == scored["operating_points"][0]["sensitivity"]
    assert {"test_sens95_specificity_ci95_low", "test_defer_coverage", "test_defer_balanced_accuracy"} <= set(metrics)
    json.dumps(scored)  # logged as JSON with the report

    never = choose(
        probs[:350], y[:350], CLASSES, positive_classes=(), target_sensitivities=(0.9,), target_balanced_accuracy=1.01
    )  # a target no confidence reaches
    scored = score(probs[350:], y[350:], CLASSES, never, lesions=np.arange(350) // 2, n_resamples=50)
    assert scored["deferral"]["coverage"] == 0.0 and np.isnan(scored["deferral"]["balanced_accuracy"])
    assert "test_defer_balanced_accuracy" not in decision_metrics(scored, "test")  # no image kept: no figure
    assert decisions_text(scored).endswith(
        "no deferral (no confidence reached balanced accuracy 1.01 on validation; the answers carry no `defer`)"
    )


def test_the_model_ships_its_decisions_serves_them_and_evaluation_scores_them(synthetic_dir, test_weights):
    from skinml.core.recipe import TrainConfig
    from skinml.stages.evaluate import evaluate
    from skinml.stages.train import train

    from ..conftest import IMAGE_SIZE

    config = TrainConfig(
        weights=test_weights,
        image_size=IMAGE_SIZE,
        epochs=3,
        batch_size=16,
        target_sensitivities=(0.8,),
        target_balanced_accuracy=0.05,
    )
    trained = train(config, synthetic_dir)
    decisions = LoggedModel.resolve(trained["model_uri"]).decisions
    assert decisions["positive_classes"] == ["akiec", "bcc", "mel"] and len(decisions["operating_points"]) == 1
    run = mlflow.get_run(trained["run_id"])
    assert run.data.metrics["val_sens80_threshold"] == decisions["operating_points"][0]["threshold"]
    assert run.data.params["target_sensitivities"] == "0.8"

    images = sorted(synthetic_dir.rglob("*.jpg"))[:6]
    answer = load_model(trained["model_uri"]).predict(request_frame([p.read_bytes() for p in images]))
    familiar = ~answer["unfamiliar"]  # an unfamiliar image is deferred, with no referral (test_familiarity.py)
    referred = answer["p_positive"] >= decisions["operating_points"][0]["threshold"]
    assert (answer["refer"][familiar] == referred[familiar]).all() and answer["refer"][~familiar].isna().all()
    unsure = answer[list(CLASSES)].max(axis=1) < decisions["deferral"]["confidence"]
    assert (answer["defer"] == (unsure | answer["unfamiliar"])).all()
    unreachable = {**decisions, "deferral": {**decisions["deferral"], "confidence": float(np.nextafter(1.0, 2.0))}}
    assert "defer" not in answer_frame(np.full((2, 7), 1 / 7), CLASSES, unreachable).columns  # no constant answer
    assert "defer" not in [c.name for c in signature(CLASSES, unreachable).outputs.inputs]

    tested = evaluate(trained["model_uri"])
    point = tested["decisions"]["operating_points"][0]
    metrics = mlflow.get_run(tested["run_id"]).data.metrics
    assert metrics["test_sens80_sensitivity"] == point["sensitivity"]
    assert metrics["test_sens80_referral_rate_ci95_high"] == point["ci95"]["referral_rate"][1]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(tested["run_id"], "plots")}
    assert {"plots/operating_points.png", "plots/deferral.png"} <= artifacts
    report = mlflow.artifacts.load_text(f"runs:/{tested['run_id']}/report/classification_report.txt")
    deferral = "no deferral (no" if defers_everything(decisions["deferral"]) else "defer below confidence"
    assert "refer when P(akiec+bcc+mel) >=" in report and deferral in report

    from skinml.registry.versions import register

    register(trained["model_uri"], "skinml", tested)
    description = mlflow.MlflowClient().get_model_version("skinml", "1").description
    assert f"Decisions, on test: refer when P(akiec+bcc+mel) >= {point['threshold']:.3f}" in description


def test_every_registered_version_gets_a_model_card_built_from_logged_values(
    synthetic_dir, test_weights, tmp_path, capsys
):
    from skinml.app.cli import main
    from skinml.core.recipe import TrainConfig
    from skinml.registry.versions import register
    from skinml.stages.evaluate import evaluate
    from skinml.stages.train import train

    from ..conftest import IMAGE_SIZE

    trained = train(TrainConfig(weights=test_weights, image_size=IMAGE_SIZE, epochs=2, batch_size=16), synthetic_dir)
    tested = evaluate(trained["model_uri"])
    register(trained["model_uri"], "skinml", tested)
    run_id = trained["run_id"]
    card = mlflow.artifacts.load_text(f"runs:/{run_id}/model_card/model_card.md")
    html = mlflow.artifacts.load_text(f"runs:/{run_id}/model_card/model_card.html")
    balanced = tested["balanced_accuracy"]
    assert f"balanced accuracy {balanced:.3f} [" in card and "## Intended use" in card and "## Known limits" in card
    assert "| akiec | " in card and "Refer when P(akiec+bcc+mel) is at or above" in card
    assert "layout `ham10000`" in card and "grouped by `lesion_id`" in card
    assert "<table>" in html and "data:image/png;base64," in html and f"{balanced:.3f}" in html
    assert "model_card/model_card.html" in mlflow.MlflowClient().get_model_version("skinml", "1").description

    # the card is written from what is logged: change a logged figure and the card follows
    mlflow.MlflowClient().log_metric(tested["run_id"], "test_balanced_accuracy", 0.123456)
    assert main(["card", "models:/skinml/1", "--output", str(tmp_path / "card")]) == 0
    capsys.readouterr()
    rewritten = (tmp_path / "card" / "model_card.md").read_text()
    assert "balanced accuracy 0.123 [" in rewritten and f"balanced accuracy {balanced:.3f} [" not in rewritten
    assert (tmp_path / "card" / "reliability_diagram.png").stat().st_size > 1000
