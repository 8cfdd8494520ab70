"""Every systemd unit the product installs bounds its memory (swap included) and its tasks, as
the containers do (mirror/model/resources.py): a keeper, status page or refresh that leaks or
forks in a loop is killed alone instead of taking the host. The values are docs/setup.md's;
systemd-analyze checks that systemd reads them (tests/test_systemd_host.py checks a real one)."""

import pytest

from mirror import render
from test_render import load, systemd_verify, unit_entries, unit_value

# unit: (MemoryMax, TasksMax), as docs/setup.md "Resource limits of the units" lists them
LIMITS = {"docker-mirror-keeper.service": ("2G", "1024"),
          "docker-mirror-refresh.service": ("2G", "1024"),
          "docker-mirror-observe.service": ("512M", "256")}


@pytest.mark.parametrize("keeper", [True, False])
def test_every_service_is_bounded_and_systemd_reads_it(tmp_path, keeper):
    s = load(tmp_path, DOCKER_MIRROR_KEEPER=keeper, DOCKER_MIRROR_OBSERVE=True)
    units = render.unit_files(s, python="/usr/bin/python3", workdir="/srv", config_path="/srv/.config")
    services = {name: text for name, text in units.items() if name.endswith(".service")}
    assert set(services) == set(LIMITS)
    for name, text in services.items():
        memory, tasks = LIMITS[name]
        assert unit_value(text, "Service", "MemoryMax") == memory, name
        assert unit_value(text, "Service", "TasksMax") == tasks, name
        # no swap on top: a leak is killed at the limit, not paged out at the host's expense
        assert unit_value(text, "Service", "MemorySwapMax") == "0", name
    # Nice= ranks the refresh among its own processes only; its cgroup's weight counts
    # against the other services' (default 100)
    assert unit_value(services["docker-mirror-refresh.service"], "Service", "CPUWeight") == "20"
    assert not any(k == "CPUWeight" for _, k, _ in unit_entries(services["docker-mirror-keeper.service"]))
    verified = systemd_verify(tmp_path / "units", units)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert not any(name in verified.stderr for name in units), verified.stderr
