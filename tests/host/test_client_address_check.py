"""`make check` (python3 -m mirror check) warns on a DOCKER_MIRROR_CLIENT_ADDRESS that is not
this host's: an address no interface holds, a name that does not resolve, or one that
resolves elsewhere. Real interfaces, real resolver: names come from /etc/hosts (a line of
the test's own), and the name that must not resolve is looked up inside a network namespace
the test makes (`unshare --net`), so no query leaves this host."""

import os
import subprocess
import sys
import uuid

import pytest

from mirror.config.kconfig import ROOT
from support.configs import QUIET_PROBES, run_mirror, write_config
from support.hosts_file import resolving

NOT_HERE = "198.51.100.7"    # TEST-NET-2: documentation only, on no interface here


def config(tmp_path, address):
    return write_config(tmp_path / ".config", olddefconfig=True, DOCKER_MIRROR_PATH=str(tmp_path / "m"),
                        DOCKER_MIRROR_CLIENT_ADDRESS=address)


def check(tmp_path, address):
    result = run_mirror("check", config=config(tmp_path, address), env=QUIET_PROBES, check=False)
    assert result.returncode == 0, result.stdout + result.stderr   # a warning, not an error
    return result.stderr


def test_an_address_no_interface_holds_is_warned_about(tmp_path):
    said = check(tmp_path, NOT_HERE)
    assert "no interface of this host holds the client address" in said
    assert f"DOCKER_MIRROR_CLIENT_ADDRESS={NOT_HERE}" in said


@pytest.mark.parametrize("address", ["127.0.0.1", "localhost"])
def test_an_address_of_this_host_passes_quietly(tmp_path, address):
    assert "client address" not in check(tmp_path, address)


def test_a_name_resolving_to_another_host_is_warned_about(tmp_path):
    name = f"dmtest-{uuid.uuid4().hex[:8]}.example"
    with resolving(name, NOT_HERE):
        said = check(tmp_path, name)
    assert f"resolves to {NOT_HERE}, which no interface of this host holds" in said


def test_a_name_that_does_not_resolve_is_warned_about(tmp_path):
    path = config(tmp_path, f"dmtest-{uuid.uuid4().hex[:8]}.invalid")
    # In a namespace of its own with no route anywhere: the resolver's query cannot leave.
    result = subprocess.run(["unshare", "--net", sys.executable, "-m", "mirror", "--config", str(path), "check"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**os.environ, **QUIET_PROBES})
    assert result.returncode == 0, result.stderr
    assert "the client address does not resolve here" in result.stderr
