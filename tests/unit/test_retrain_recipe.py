import json
from types import SimpleNamespace

import pytest

from flows import retrain
from skinml.core.errors import ModelMismatchError
from skinml.core.recipe import AugmentConfig, TrainConfig, preset, recipe
from skinml.tracking import logged_model


def champion_logged(monkeypatch, tmp_path, logged: dict) -> None:
    """Make `logged` the config.json of the registry's champion."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(logged))
    monkeypatch.setattr(retrain, "version_by_alias", lambda *_: SimpleNamespace(run_id="champion-run", version="3"))
    monkeypatch.setattr(logged_model, "download_run_artifact", lambda run_id, artifact: path)


def test_retrain_recipe_is_the_champions_whole_config(monkeypatch, tmp_path):
    # Every kind of change from the preset: tuned numbers, the loss, the fine-tuning cut (here: none at all, a
    # None that must not fall back to the preset's block_4) and the augmentation.
    champion = preset("best").replace(
        dropout=0.3,
        learning_rate=5e-4,
        loss="crossentropy",
        fine_tune_from=None,
        fine_tune_epochs=0,
        augment={"rotation": 0.2, "flip": False},
        data_format="csv",
        label_map={"mel": "malignant", "nv": "benign", "unk": ""},
    )
    champion_logged(monkeypatch, tmp_path, champion.to_dict())  # what `train` logs
    config, run_id = retrain.champion_recipe("skinml")
    assert (config.preset, run_id) == ("best", "champion-run")
    assert config == champion and recipe(config.preset, config.preset_overrides()) == champion
    assert dict(config.label_map) == {"mel": "malignant", "nv": "benign", "unk": ""}


def test_a_champion_this_version_cannot_read_is_a_clear_error(monkeypatch, tmp_path):
    # a config.json written before options were retired (docs/ablation.md), or the flat params of older runs
    champion_logged(monkeypatch, tmp_path, {**preset("best").to_dict(), "class_weight": "none", "mixup": 0.0})
    with pytest.raises(ModelMismatchError, match=r"champion skinml v3: run champion-run .*class_weight.*retrain"):
        retrain.champion_recipe("skinml")


def test_config_dict_round_trip_and_unknown_fields_named():
    config = preset("best").replace(augment={"zoom": 0.2})
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert TrainConfig.from_dict({"dropout": 0.5}) == TrainConfig(dropout=0.5)
    with pytest.raises(ValueError, match="droput"):
        TrainConfig.from_dict({"droput": 0.5})
    with pytest.raises(ValueError, match="augment.hue"):
        preset("best").replace(augment={"hue": 0.1})
    assert preset("best").replace(augment={"zoom": 0.2}).augment == AugmentConfig(zoom=0.2)
