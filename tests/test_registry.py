"""Registry and promotion rule, with models trained on synthetic data."""

import mlflow
import pytest
from mlflow import MlflowClient

from skinml.config import TrainConfig
from skinml.manifests import run_split
from skinml.registry import LeakySplitError, promote, register, version_by_alias
from skinml.train import train

from .conftest import IMAGE_SIZE


def test_promotion_moves_aliases_only_for_a_better_honest_challenger(synthetic_dir, test_weights, tmp_path):
    manifest = tmp_path / "manifest.csv"
    run_split(synthetic_dir, manifest)
    config = TrainConfig(weights=test_weights, image_size=IMAGE_SIZE, cached_views=1, batch_size=16)
    weak = train(config.replace(epochs=1, learning_rate=1e-6), synthetic_dir, manifest)
    strong = train(config.replace(epochs=15, learning_rate=3e-3), synthetic_dir, manifest)

    first = register(weak["model_uri"])
    assert first["aliases"] == ["challenger", "champion"]
    version = MlflowClient().get_model_version("skinml", first["version"])
    assert version.tags["run_id"] == weak["run_id"] and len(version.tags["manifest_sha256"]) == 64

    assert register(strong["model_uri"])["aliases"] == ["challenger"]
    decision = promote()
    assert decision["promoted"] is True
    assert decision["challenger_balanced_accuracy"] > decision["champion_balanced_accuracy"]
    assert str(version_by_alias("skinml", "champion").version) == "2"
    promotion_run = mlflow.get_run(decision["promotion_run_id"])
    assert promotion_run.data.metrics["challenger_balanced_accuracy"] == decision["challenger_balanced_accuracy"]
    assert "promoted" in MlflowClient().get_model_version("skinml", "2").tags["promotion_decision"]

    register(weak["model_uri"])  # version 3, the weak model again, as challenger
    decision = promote(margin=0.0)
    assert decision["promoted"] is False
    assert str(version_by_alias("skinml", "champion").version) == "2"
    assert str(version_by_alias("skinml", "challenger").version) == "3"

    random_manifest = tmp_path / "random.csv"
    run_split(synthetic_dir, random_manifest, strategy="random")
    leaky = train(config.replace(epochs=1), synthetic_dir, random_manifest)
    register(leaky["model_uri"])
    with pytest.raises(LeakySplitError, match="trained on .* lesions of the champion's test split"):
        promote()
    assert str(version_by_alias("skinml", "champion").version) == "2"
