"""A LAN bind with no auth or no TLS is said out loud by `check` (and docker-mirror)."""

from mirror.config import exposure, settings
from support.configs import QUIET_PROBES, run_mirror, write_config

GOOD_BCRYPT = "alice:$2y$05$7bk5Xz7zQyrc5ZvLk0i3R.ECn6wbiHcJLyGIo8H3AqiV7M6i8kD1W"


def check(tmp_path, **overrides):
    path = write_config(tmp_path / ".config", **overrides)
    return run_mirror("check", config=path, env=QUIET_PROBES)


def test_a_wildcard_bind_with_no_auth_and_no_tls_is_loud(tmp_path):
    result = check(tmp_path, DOCKER_MIRROR_BIND_ADDRESS="0.0.0.0")
    assert ": OK" in result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith("WARNING: ") for line in lines)
    assert "every address of this host" in lines[0] and "DOCKER_MIRROR_HTPASSWD" in lines[0]
    assert "clear text" in lines[1] and "DOCKER_MIRROR_TLS" in lines[1]


def test_loopback_is_quiet(tmp_path):
    assert check(tmp_path).stderr == ""
    assert check(tmp_path, DOCKER_MIRROR_BIND_ADDRESS="::1").stderr == ""


def test_a_lan_bind_with_auth_and_tls_is_quiet(tmp_path):
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(GOOD_BCRYPT + "\n")
    path = write_config(tmp_path / ".config", DOCKER_MIRROR_BIND_ADDRESS="198.18.77.1",
                        DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=str(htpasswd),
                        DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_TLS_CERTIFICATE=str(tmp_path / "c.pem"),
                        DOCKER_MIRROR_TLS_KEY=str(tmp_path / "k.pem"))
    loaded = settings.load(path)
    assert exposure.warnings(loaded) == []
    only_auth = write_config(tmp_path / "auth.config", DOCKER_MIRROR_BIND_ADDRESS="198.18.77.1",
                             DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=str(htpasswd))
    [warning] = exposure.warnings(settings.load(only_auth))
    assert "198.18.77.1" in warning and "without TLS" in warning


S3_REPLICAS = {"DOCKER_MIRROR_STORAGE_FILESYSTEM": False, "DOCKER_MIRROR_STORAGE_S3": True,
               "DOCKER_MIRROR_S3_ENDPOINT": "http://127.0.0.1:8333", "DOCKER_MIRROR_S3_BUCKET": "mirror-cache",
               "DOCKER_MIRROR_S3_ACCESS_KEY_ID": "AKIDEXAMPLE", "DOCKER_MIRROR_S3_SECRET_KEY": "secret-key",
               "DOCKER_MIRROR_REPLICAS": 2}


def test_replicas_on_an_engine_without_the_redaction_patch_are_said_out_loud(tmp_path):
    """registry:2 shows the replicas' Redis password at /debug/vars (loopback: any local user)."""
    [warning] = exposure.warnings(settings.load(write_config(
        tmp_path / "stock.config", olddefconfig=True, DOCKER_MIRROR_REGISTRY_BUILT=False,
        DOCKER_MIRROR_REGISTRY_IMAGE="registry:2", **S3_REPLICAS)))
    assert "registry:2" in warning and "/debug/vars" in warning and "DOCKER_MIRROR_REGISTRY_BUILT" in warning
    assert exposure.warnings(settings.load(write_config(tmp_path / "built.config", **S3_REPLICAS))) == []
