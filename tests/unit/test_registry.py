"""Registry and promotion rule, with models trained on synthetic data."""

from pathlib import Path
from urllib.parse import urlparse

import mlflow
import pytest
from mlflow import MlflowClient

from skinml.app.cli import main
from skinml.core.recipe import TrainConfig
from skinml.registry.promotion import LeakySplitError, promote
from skinml.registry.versions import register, version_by_alias
from skinml.serving import integrity
from skinml.serving.integrity import DIGEST_TAG, ModelIntegrityError, model_files_digest
from skinml.stages.evaluate import evaluate
from skinml.stages.split import run_split
from skinml.stages.train import train
from skinml.tracking.model_store import load_model

from ..conftest import IMAGE_SIZE, make_separable_set


def test_promotion_moves_aliases_only_for_a_challenger_better_beyond_the_noise(test_weights, tmp_path):
    # classes a random backbone separates, one image per lesion: a trained head (balanced accuracy ~1 on a test
    # split of ~20 lesions) beats an untrained one (~1/7) beyond the paired lesion bootstrap's noise
    data = make_separable_set(tmp_path / "data")
    manifest = tmp_path / "manifest.csv"
    run_split(data, manifest)
    config = TrainConfig(weights=test_weights, image_size=IMAGE_SIZE, cached_views=1, batch_size=16)
    weak, strong = [
        train(config.replace(epochs=epochs, learning_rate=rate), data, manifest)
        for epochs, rate in ((1, 1e-6), (15, 3e-3))
    ]
    scored = {model["model_uri"]: evaluate(model["model_uri"])["run_id"] for model in (weak, strong)}

    first = register(weak["model_uri"])
    assert first["aliases"] == ["challenger", "champion"]
    version = MlflowClient().get_model_version("skinml", first["version"])
    assert version.tags["run_id"] == weak["run_id"] and len(version.tags["manifest_sha256"]) == 64

    assert register(strong["model_uri"])["aliases"] == ["challenger"]
    decision = promote()
    assert decision["promoted"] is True, decision["reason"]
    low, high = decision["difference_ci95"]
    assert 0 < low <= decision["difference"] <= high
    assert decision["difference"] == pytest.approx(
        decision["challenger_balanced_accuracy"] - decision["champion_balanced_accuracy"]
    )
    # both models' per-image predictions came from their evaluations: nothing was scored again
    assert decision["evaluation_run_ids"] == {
        "champion": scored[weak["model_uri"]],
        "challenger": scored[strong["model_uri"]],
    }
    assert "95% paired lesion bootstrap" in MlflowClient().get_model_version("skinml", "2").description
    assert mlflow.get_run(strong["run_id"]).data.tags["skinml.champion"] == "yes"
    assert "skinml.champion" not in mlflow.get_run(weak["run_id"]).data.tags
    assert not mlflow.get_run(strong["run_id"]).info.run_name.startswith("★")  # the mark names parents only
    assert str(version_by_alias("skinml", "champion").version) == "2"
    promotion_run = mlflow.get_run(decision["promotion_run_id"])
    assert promotion_run.data.metrics["challenger_balanced_accuracy"] == decision["challenger_balanced_accuracy"]
    assert "promoted" in MlflowClient().get_model_version("skinml", "2").tags["promotion_decision"]

    register(weak["model_uri"])  # version 3, the weak model again, as challenger
    decision = promote(margin=0.0)
    assert decision["promoted"] is False and decision["difference_ci95"][0] < 0
    assert str(version_by_alias("skinml", "champion").version) == "2"
    assert str(version_by_alias("skinml", "challenger").version) == "3"

    random_manifest = tmp_path / "random.csv"
    run_split(data, random_manifest, strategy="random")
    leaky = train(config.replace(epochs=1), data, random_manifest)
    register(leaky["model_uri"])
    with pytest.raises(LeakySplitError, match="trained on .* lesions of the champion's test split"):
        promote()
    assert str(version_by_alias("skinml", "champion").version) == "2"


def test_a_registered_model_whose_files_changed_is_refused_at_load(
    synthetic_dir, test_weights, tmp_path, capsys, monkeypatch
):
    trained = train(TrainConfig(weights=test_weights, image_size=IMAGE_SIZE, cached_views=1, epochs=1), synthetic_dir)
    version = register(trained["model_uri"])["version"]
    assert MlflowClient().get_model_version("skinml", version).tags[DIGEST_TAG] == model_files_digest(
        trained["model_uri"]
    )
    image = str(next(synthetic_dir.rglob("*.jpg")))
    assert main(["predict", image, "--model-uri", "models:/skinml@champion"]) == 0  # untouched: loads
    capsys.readouterr()
    lookups = []  # skinml checks the copy it downloads; the model's loader does not look it up again
    looked_up = integrity.registered_versions_of
    monkeypatch.setattr(integrity, "registered_versions_of", lambda folder: lookups.append(folder) or looked_up(folder))
    load_model("models:/skinml@champion")
    assert lookups == []

    # someone with write access to the artifact store changes one byte of the code bundled with the model
    store = Path(urlparse(mlflow.get_logged_model(trained["model_uri"].split("/")[-1]).artifact_location).path)
    bundled = store / "code" / "skinml" / "core" / "settings.py"
    source = bundled.read_bytes()
    tampered = source.replace(b'"SKINML_SERVE_MAX_ROWS", "64"', b'"SKINML_SERVE_MAX_ROWS", "65"', 1)
    assert len(tampered) == len(source) and tampered != source
    bundled.write_bytes(tampered)
    message = f"model skinml version {version}: its files no longer match the digest recorded when it was registered"
    with pytest.raises(ModelIntegrityError, match=message):
        load_model("models:/skinml@champion")
    assert main(["predict", image, "--model-uri", f"models:/skinml/{version}"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"skinml predict: error: {message} ({DIGEST_TAG}): refusing to load it (docs/security.md)"
    ]
    # what `mlflow models serve -m models:/skinml@champion` does: MLflow downloads the version, then loads the copy
    served_copy = mlflow.artifacts.download_artifacts(artifact_uri="models:/skinml@champion", dst_path=str(tmp_path))
    with pytest.raises(ModelIntegrityError, match=message):
        mlflow.pyfunc.load_model(served_copy)
    with pytest.raises(ModelIntegrityError, match=message):  # the logged model's own URI: the same files
        mlflow.pyfunc.load_model(trained["model_uri"])
    # a registry store that is not there is not created to look: the copy loads unchecked
    elsewhere = tmp_path / "elsewhere.db"
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", f"sqlite:///{elsewhere}")
    assert mlflow.pyfunc.load_model(served_copy).metadata.signature is not None and not elsewhere.exists()
    monkeypatch.delenv("MLFLOW_REGISTRY_URI")
    bundled.write_bytes(source)  # put back: loads again
    assert load_model("models:/skinml@champion").metadata.signature is not None
