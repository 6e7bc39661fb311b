import dataclasses
import json
from types import SimpleNamespace

from flows import retrain
from skinml.config import preset


def test_retrain_recipe_keeps_the_champions_tuned_hyperparameters_and_augmentation(monkeypatch, tmp_path):
    champion = preset("best").replace(dropout=0.3, learning_rate=5e-4, augment={"hue": 0.02, "brightness": 0.1})
    logged = tmp_path / "config.json"  # what `train` logs: the flat params plus the augmentation fields
    logged.write_text(json.dumps({**champion.params(), "augment": dataclasses.asdict(champion.augment)}))
    monkeypatch.setattr(retrain, "version_by_alias", lambda *_: SimpleNamespace(run_id="champion-run"))
    monkeypatch.setattr(retrain, "download_run_artifact", lambda run_id, path: logged)
    name, overrides, run_id = retrain.champion_recipe("skinml")
    assert (name, run_id) == ("best", "champion-run")
    assert preset(name).replace(**overrides) == champion
