"""The settings a command's flows run under: no flow-run heartbeats on Prefect's temporary server, Prefect's own
against a real one."""

from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

from skinml.app.prefect_server import temporary_server_settings


def test_flows_on_the_temporary_server_send_no_heartbeats():
    default = get_current_settings().flows.heartbeat_frequency
    assert default  # Prefect's default: a heartbeat every 180 s
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        with temporary_server_settings():
            assert get_current_settings().flows.heartbeat_frequency is None
        assert get_current_settings().flows.heartbeat_frequency == default


def test_flows_against_a_real_server_keep_prefect_heartbeats():
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        default = get_current_settings().flows.heartbeat_frequency
        with temporary_server_settings():
            assert default and get_current_settings().flows.heartbeat_frequency == default
