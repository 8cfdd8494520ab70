"""The command line's --path/--port/--name overrides reach every verb that reads a mirror.

A mirror set up with `docker-mirror --path DIR --port N --name PREFIX` (kdevops'
docker-mirror-setup.sh DIR PORT NAME) is the one its status, pull, gc, restore,
checks and image rewriting must then talk about, not the .config's own.
"""

from __future__ import annotations

import json

import pytest

from mirror.cli import build_parser
from mirror.cli.common import OVERRIDES
from support.configs import QUIET_PROBES, run_mirror, write_config

MIRROR_VERBS = ("docker-mirror", "keeper", "observe", "remove", "refresh", "pull", "status", "gc",
                "check-mirror", "image-url", "restore")


@pytest.mark.parametrize("verb", MIRROR_VERBS)
def test_every_verb_that_reads_a_mirror_takes_the_overrides(verb):
    extra = {"check-mirror": ["DOCKER_MIRROR_DIR"], "image-url": ["busybox"]}.get(verb, [])
    argv = [verb, *extra, "--path", "/srv/m", "--port", "6123", "--name", "other"]
    args = build_parser(argv).parse_args(argv)
    assert (args.path, args.port, args.name) == ("/srv/m", 6123, "other")
    assert [option for option, *_ in OVERRIDES] == ["--path", "--port", "--name"]


def test_status_and_checks_follow_the_overrides(tmp_path):
    config = write_config(tmp_path / ".config")
    where = tmp_path / "elsewhere"
    overrides = ["--path", str(where), "--port", "6123", "--name", "other"]

    doc = json.loads(run_mirror("status", "--json", *overrides, config=config, env=QUIET_PROBES,
                                check=False).stdout)
    assert doc["path"] == str(where)
    assert doc["upstreams"][0]["address"].endswith(":6123")
    assert doc["upstreams"][0]["container"]["name"] == "other-dockerhub"

    assert run_mirror("check-mirror", "DOCKER_MIRROR_DIR", *overrides, config=config,
                      env=QUIET_PROBES).stdout.strip() == str(where)
    rewritten = run_mirror("image-url", "--no-probe", *overrides, "busybox:1.36", config=config,
                           env=QUIET_PROBES).stdout.strip()
    assert rewritten.endswith(":6123/library/busybox:1.36"), rewritten


def test_a_bad_override_is_named_as_the_command_line_s(tmp_path):
    config = write_config(tmp_path / ".config")
    result = run_mirror("status", "--port", "70000", config=config, env=QUIET_PROBES, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "70000" in result.stderr and "command line" in result.stderr
    assert "Traceback" not in result.stderr
