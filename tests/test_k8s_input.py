"""make docker-mirror-k8s on bad input: each refused with its option or symbol named,
before anything is written, never a traceback."""

import pytest

from support.configs import write_config
from support.k8s_manifests import run


@pytest.mark.parametrize("overrides, args, words", [
    ({}, ("--namespace", "Mirrors"), ["--namespace 'Mirrors'", "lower-case"]),
    ({}, ("--warm-image", "Not An Image"), ["--warm-image", "invalid image reference"]),
    ({"DOCKER_MIRROR_REFRESH_ON_CALENDAR": "Mon..Fri 02:00"}, (),
     ["CONFIG_DOCKER_MIRROR_REFRESH_ON_CALENDAR='Mon..Fri 02:00'", ".config:", "with Kubernetes"]),
    ({"DOCKER_MIRROR_CONTAINER_PREFIX": "Docker_Mirror"}, (),
     ["CONFIG_DOCKER_MIRROR_CONTAINER_PREFIX='Docker_Mirror'", ".config:", "Kubernetes name"]),
    ({"DOCKER_MIRROR_CONTAINER_PREFIX": "m" * 40}, (),
     ["CONFIG_DOCKER_MIRROR_CONTAINER_PREFIX=", "-dockerhub-storage", "at most 52"]),
    ({"ENABLE_DOCKER_MIRROR": False}, (), ["CONFIG_ENABLE_DOCKER_MIRROR is off"]),
])
def test_bad_input_is_named_without_a_traceback(tmp_path, capsys, overrides, args, words):
    config = write_config(tmp_path / ".config", **overrides)
    out = tmp_path / "k8s"
    assert run(config, out, *args) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("generate", [True, False])
def test_a_tls_file_that_cannot_be_read_is_named(tmp_path, capsys, generate):
    overrides = ({"DOCKER_MIRROR_TLS_GENERATE": True} if generate else
                 {"DOCKER_MIRROR_TLS_GIVEN": True, "DOCKER_MIRROR_TLS_CERTIFICATE": str(tmp_path / "none.crt"),
                  "DOCKER_MIRROR_TLS_KEY": str(tmp_path / "none.key")})
    config = write_config(tmp_path / ".config", DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_PATH=str(tmp_path / "m"),
                          **overrides)
    out = tmp_path / "k8s"
    assert run(config, out) == 2
    err = capsys.readouterr().err
    if generate:
        assert "CONFIG_DOCKER_MIRROR_TLS_GENERATE" in err and "run 'make docker-mirror' once" in err
    else:
        assert f"CONFIG_DOCKER_MIRROR_TLS_CERTIFICATE='{tmp_path / 'none.crt'}'" in err
    assert "No such file" in err and "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("where", ["file", "under a file"])
def test_an_output_path_that_is_a_file_is_refused(tmp_path, capsys, where):
    config = write_config(tmp_path / ".config")
    file = tmp_path / "taken"
    file.write_text("mine\n")
    out = file if where == "file" else file / "k8s"
    assert run(config, out) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out}:") and "not a directory" in err and "--out" in err
    assert file.read_text() == "mine\n"


def test_a_users_file_with_a_manifests_name_is_not_overwritten(tmp_path, capsys):
    config = write_config(tmp_path / ".config")
    out = tmp_path / "k8s"
    out.mkdir()
    mine = out / "20-dockerhub.yaml"
    mine.write_text("# my own notes\n")
    assert run(config, out) == 2
    err = capsys.readouterr().err
    assert str(mine) in err and "did not write" in err and "Traceback" not in err
    assert mine.read_text() == "# my own notes\n"
    assert sorted(p.name for p in out.iterdir()) == ["20-dockerhub.yaml"]   # nothing written
    mine.unlink()
    assert run(config, out) == 0 and run(config, out) == 0   # its own files it rewrites
