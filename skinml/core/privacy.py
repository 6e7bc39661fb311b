"""Nothing leaves the machine: every dependency's usage telemetry is turned off through its own documented switch,
before that dependency can start, unless the user opts in with `SKINML_TELEMETRY=on` (then each keeps its default).

Called when `skinml` is imported, so it holds for every skinml command, for the processes they start (Prefect's
temporary server, the model server's workers) and for the servers `deploy/stack` starts. MLflow's and Prefect's own
commands (`mlflow ui`, `mlflow run`, `mlflow models serve`, `prefect server start`) read theirs from the environment
before any skinml code runs: `opt_out_exports()` is what a shell exports for them (docs/security.md).
"""

from __future__ import annotations

import os

from skinml.core.settings import telemetry_opted_in

OPT_OUTS: dict[str, str] = {
    "MLFLOW_DISABLE_TELEMETRY": "true",  # MLflow's client, and the UI telemetry its servers hand to browsers
    "DO_NOT_TRACK": "true",  # Prefect's client analytics (MLflow reads it too)
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # the Prefect server's start-up heartbeat
}
"""Each dependency's environment switch and its 'off' value. OpenVINO has none: see decline_openvino_telemetry."""


def opt_out_exports() -> dict[str, str]:
    """The variables to export in a shell so that MLflow's and Prefect's own commands send nothing either (empty when
    the user opted in); a value the environment already has is kept."""
    if telemetry_opted_in():
        return {}
    return {name: os.environ.get(name, value) for name, value in OPT_OUTS.items()}


def decline_openvino_telemetry() -> None:
    """Record 'declined' in OpenVINO's consent file (`~/intel/openvino_telemetry`, the file its `opt_in_out --opt_out`
    writes) when there is none: without it, every model conversion sends usage data to Google Analytics from a forked
    process, which can also hang the command's exit on a host without internet. A choice the user already made with
    `opt_in_out` stays. The file is written through OpenVINO's own consent checker: `opt_in_out --opt_out` itself
    would send an 'opted out' event."""
    try:  # optional: OpenVINO's telemetry package may be absent
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError:  # no OpenVINO telemetry package: nothing to decline
        return
    try:
        checker = OptInChecker()
        if checker.consent_file_base_dir() is None or os.path.exists(checker.consent_file()):
            return
        if checker.create_or_check_consent_dir():
            checker.update_result(ConsentCheckResult.DECLINED)
    except (OSError, RuntimeError):  # no home folder (a container's arbitrary user): OpenVINO finds no consent
        pass


def turn_off_telemetry() -> None:
    """Every dependency's telemetry off (a variable the user set is kept), unless the user opted in."""
    if telemetry_opted_in():
        return
    for name, value in OPT_OUTS.items():
        os.environ.setdefault(name, value)
    decline_openvino_telemetry()
