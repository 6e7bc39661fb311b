"""The core layer's telemetry switches (skinml.core.privacy) and where a stage's run goes (skinml.core.run_context)."""

import dataclasses
import os
from pathlib import Path

import pytest

from skinml.core import privacy
from skinml.core.privacy import OPT_OUTS, decline_openvino_telemetry, opt_out_exports, turn_off_telemetry
from skinml.core.recipe import DEFAULT_EXPERIMENT
from skinml.core.run_context import RunContext
from skinml.core.settings import telemetry_opted_in


@pytest.fixture
def no_opt_outs(monkeypatch):
    """An environment without the opt-out variables nor SKINML_TELEMETRY (restored after the test)."""
    for name in (*OPT_OUTS, "SKINML_TELEMETRY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A home folder of the test's own, where OpenVINO looks for its consent file."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    return folder


def test_the_opt_outs_name_each_dependencys_switch():
    assert OPT_OUTS == {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


@pytest.mark.skipif(telemetry_opted_in(), reason="the user opted in: skinml keeps every default")
def test_importing_skinml_turned_telemetry_off():
    # skinml/__init__.py calls turn_off_telemetry: the test process imported skinml before this test
    for name in OPT_OUTS:
        assert name in os.environ, name


def test_the_exports_are_the_opt_outs_keeping_a_value_the_environment_has(no_opt_outs, monkeypatch):
    assert opt_out_exports() == OPT_OUTS
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    assert opt_out_exports() == {**OPT_OUTS, "DO_NOT_TRACK": "1"}


@pytest.mark.parametrize("opted_in", ["on", "ON", "true", "1", "yes"])
def test_a_user_who_opts_in_gets_no_exports_and_no_change(no_opt_outs, monkeypatch, home, opted_in):
    monkeypatch.setenv("SKINML_TELEMETRY", opted_in)
    assert opt_out_exports() == {}
    turn_off_telemetry()
    assert not [name for name in OPT_OUTS if name in os.environ]
    assert not (home / "intel").exists()  # OpenVINO's consent is left alone too


def test_turning_telemetry_off_sets_every_switch_and_keeps_the_users(no_opt_outs, monkeypatch, home):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "false")  # the user's own choice
    monkeypatch.setenv("SKINML_TELEMETRY", "off")
    turn_off_telemetry()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "false"
    assert os.environ["DO_NOT_TRACK"] == "true" and os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert (home / "intel" / "openvino_telemetry").read_text() == "0"  # OpenVINO's consent: declined


def test_openvino_consent_is_declined_once_and_a_users_choice_stays(home):
    decline_openvino_telemetry()
    consent = home / "intel" / "openvino_telemetry"
    assert consent.read_text() == "0"
    consent.write_text("1")  # the user opted in with opt_in_out later
    decline_openvino_telemetry()
    assert consent.read_text() == "1"


def test_no_home_folder_means_nothing_declined_and_no_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "no-such-home"))
    decline_openvino_telemetry()
    assert not (tmp_path / "no-such-home").exists()


def test_no_openvino_telemetry_package_is_no_error(home, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "openvino_telemetry.utils.opt_in_checker", None)  # an import that fails
    privacy.decline_openvino_telemetry()
    assert not (home / "intel").exists()


def test_a_run_context_defaults_to_the_default_experiment_and_no_parent():
    context = RunContext()
    assert context.experiment == DEFAULT_EXPERIMENT == "skinml" and context.parent_run_id is None


def test_under_nests_in_the_same_experiment_and_leaves_the_original():
    context = RunContext("sweeps")
    nested = context.under("abc123")
    assert nested == RunContext("sweeps", "abc123")
    assert context.parent_run_id is None  # a new value, the original unchanged
    assert nested.under("def456") == RunContext("sweeps", "def456")


def test_a_run_context_is_a_frozen_value():
    context = RunContext("x", "p")
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.experiment = "y"
    assert hash(context) == hash(RunContext("x", "p")) and {context, RunContext("x", "p")} == {context}
