"""The metrics and status page service set up by `make docker-mirror` and taken down by
`make docker-mirror-remove`: its systemd unit (checked by systemd-analyze), and on this host
(no systemd) the detached process, reached over HTTP and reported by status."""

import time

import pytest
import requests

from mirror import render
from support.mirrors import Mirror
from support.upstream import UpstreamRegistry, free_port
from test_render import exec_words, load, systemd_verify, unit_value


def test_the_unit_runs_serve_status_only_when_enabled(tmp_path):
    assert "docker-mirror-observe.service" not in render.unit_files(
        load(tmp_path), python="/usr/bin/python3", workdir="/srv", config_path="/srv/.config")
    s = load(tmp_path, DOCKER_MIRROR_OBSERVE=True, DOCKER_MIRROR_OBSERVE_PORT=9777)
    units = render.unit_files(s, python="/usr/bin/python3", workdir="/srv", config_path="/srv/.config")
    unit = units["docker-mirror-observe.service"]
    assert exec_words(unit_value(unit, "Service", "ExecStart")) == [
        "/usr/bin/python3", "-m", "mirror", "--config", "/srv/.config", "observe"]
    assert unit_value(unit, "Unit", "Wants") == "docker.service network-online.target"
    assert "127.0.0.1:9777" in unit      # a changed address changes the unit: it is restarted
    verified = systemd_verify(tmp_path / "units", {"docker-mirror-observe.service": unit})
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_bad_address_is_named_with_its_symbol(tmp_path):
    config = tmp_path / ".config"
    from support.configs import write_config
    write_config(config, DOCKER_MIRROR_OBSERVE=True, DOCKER_MIRROR_OBSERVE_ADDRESS="localhost")
    from mirror.errors import ConfigError
    from mirror.config import settings
    with pytest.raises(ConfigError, match=r"CONFIG_DOCKER_MIRROR_OBSERVE_ADDRESS=.*localhost.*IP address"):
        settings.load(config)


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def answers(url) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_docker_mirror_starts_it_status_reports_it_remove_stops_it(tmp_path, docker_client, registry_image):
    with UpstreamRegistry(tmp_path / "hub") as hub:
        port = free_port()
        m = Mirror(tmp_path / "m", hub.url, DOCKER_MIRROR_OBSERVE=True, DOCKER_MIRROR_OBSERVE_PORT=port,
                   DOCKER_MIRROR_OBSERVE_INTERVAL=5)
        try:
            done = m.setup()
            assert "status page started in the background" in done.stdout + done.stderr
            metrics = f"http://127.0.0.1:{port}/metrics"
            assert wait_for(lambda: answers(metrics)), (m.root / "observe" / "serve.log").read_text()
            assert 'docker_mirror_up{upstream="dockerhub"} 1.0' in requests.get(metrics, timeout=5).text
            shown = m.run("status").stdout
            assert f"Metrics and status page: http://127.0.0.1:{port} (running, pid" in shown
            assert "Docker Hub headroom:" in shown
            again = m.setup()            # a second run leaves the running service alone
            assert "status page started" not in again.stdout + again.stderr
            removed = m.run("remove")
            assert "stopped the status page service" in removed.stdout
            assert wait_for(lambda: not answers(metrics))
        finally:
            m.remove(docker_client)
