import json
from types import SimpleNamespace

import pytest

from flows import retrain
from skinml.config import AugmentConfig, TrainConfig, preset


def champion_logged(monkeypatch, tmp_path, logged: dict) -> None:
    """Make `logged` the config.json of the registry's champion."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(logged))
    monkeypatch.setattr(retrain, "version_by_alias", lambda *_: SimpleNamespace(run_id="champion-run"))
    monkeypatch.setattr(retrain, "download_run_artifact", lambda run_id, artifact: path)


def test_retrain_recipe_is_the_champions_whole_config(monkeypatch, tmp_path):
    # Every kind of change from the preset: tuned numbers, the loss, the fine-tuning cut (here: none at all, a
    # None that must not fall back to the preset's block_4) and the augmentation.
    champion = preset("best").replace(dropout=0.3, learning_rate=5e-4, loss="crossentropy", class_weight="balanced",
                                      fine_tune_from=None, fine_tune_epochs=0, label_smoothing=0.1,
                                      augment={"hue": 0.02, "brightness": 0.1})
    champion_logged(monkeypatch, tmp_path, champion.to_dict())  # what `train` logs
    name, overrides, run_id = retrain.champion_recipe("skinml")
    assert (name, run_id) == ("best", "champion-run")
    assert json.loads(json.dumps(overrides)) == overrides  # travels as flow parameters
    assert preset(name).replace(**overrides) == champion


def test_retrain_recipe_of_a_run_logged_before_the_whole_config(monkeypatch, tmp_path):
    # Older runs logged their flat MLflow params as config.json: the preset and the fields they carry as they are.
    older = preset("best").replace(dropout=0.3, augment={"hue": 0.02})
    champion_logged(monkeypatch, tmp_path, {**older.params(), "augment": older.to_dict()["augment"]})
    name, overrides, _ = retrain.champion_recipe("skinml")
    assert preset(name).replace(**overrides) == older


def test_config_dict_round_trip_and_unknown_fields_named():
    config = preset("best").replace(augment={"saturation": 0.2})
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert TrainConfig.from_dict({"dropout": 0.5}) == TrainConfig(dropout=0.5)
    with pytest.raises(ValueError, match="droput"):
        TrainConfig.from_dict({"droput": 0.5})
    with pytest.raises(ValueError, match="augment.tint"):
        preset("best").replace(augment={"tint": 0.1})
    assert preset("best").replace(augment={"hue": 0.1}).augment == AugmentConfig(hue=0.1)
