"""Rendered files, checked key by key and against their real consumers.

The registry config is parsed with yaml.safe_load and also served by the real
distribution 2.8.2 the mirror runs (the engine built here, support.engine); the systemd units go
through `systemd-analyze verify`; the exports line is read back with the
tokenizer rules of nfs-utils' exportfs.
"""

import dataclasses
import os
import shlex
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import yaml
from hypothesis import given, settings as hsettings, strategies as st

from mirror import render
from mirror.config import settings
from mirror.model.settings import Settings
from mirror.model import endpoint
from mirror.model import modes as L
from support.configs import write_config
from support.engine import mirror_binary
from support.upstream import free_port, push_image

GOOD_BCRYPT = "alice:$2y$05$" + "a" * 53
SECRET = "3rvO1K0m-http-secret"
DOCKER_HUB_URL = "https://registry-1.docker.io"
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"

# What a .config line can carry (no line breaks): quotes, colons, #, backslash ...
CONFIG_HOSTILE = 'p"a\'s:s #w\\o: rd - [x] {y} &a *b !t | > % @ ` ~ null yes 0x10 é☃'
# ... and what only a Settings built in Python can: line breaks, tabs, NEL, astral.
HOSTILE = CONFIG_HOSTILE + "\nline2\r\n\ttab \x85nel \u2028ls \U0001F600 \x00\x1b \ufeff "

FILESYSTEM_STORAGE = {"filesystem": {"rootdirectory": render.CONTAINER_STORAGE}}
COMMON_STORAGE = {
    "delete": {"enabled": False},
    "cache": {"blobdescriptor": "inmemory"},
    "maintenance": {"uploadpurging": {"enabled": True, "age": "168h", "interval": "24h",
                                      "dryrun": False}},
}
HEALTH = {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}}


def load(tmp_path, **overrides) -> Settings:
    return settings.load(write_config(tmp_path / ".config", **overrides))


def htpasswd_overrides(tmp_path) -> dict:
    path = tmp_path / "htpasswd"
    path.write_text(GOOD_BCRYPT + "\n")
    return {"DOCKER_MIRROR_HTPASSWD": True, "DOCKER_MIRROR_HTPASSWD_PATH": str(path)}


TLS = {"DOCKER_MIRROR_TLS": True, "DOCKER_MIRROR_TLS_CERTIFICATE": "/etc/docker-mirror/cert.pem",
       "DOCKER_MIRROR_TLS_KEY": "/etc/docker-mirror/key.pem"}
AZURE = {"DOCKER_MIRROR_STORAGE_FILESYSTEM": False, "DOCKER_MIRROR_STORAGE_AZURE": True,
         "DOCKER_MIRROR_AZURE_ACCOUNT_NAME": "mirroracct",
         "DOCKER_MIRROR_AZURE_ACCOUNT_KEY": "c2VjcmV0LWtleQ==",
         "DOCKER_MIRROR_AZURE_CONTAINER": "registry-cache"}


def rendered(s, upstream=None, *, mode=L.PULL_THROUGH, major=2, secret=SECRET):
    text = render.registry_config(s, upstream or s.upstreams[0], major=major, mode=mode,
                                  http_secret=secret)
    return text, yaml.safe_load(text)


def assert_no_cors(text: str, doc: dict) -> None:
    assert "access-control" not in text.lower()
    assert list(doc["http"]["headers"]) == ["X-Content-Type-Options"]


# ------------------------------------------------------------ registry config

@pytest.mark.parametrize("backend", ["filesystem", "azure"])
@pytest.mark.parametrize("htpasswd", [False, True], ids=["no-auth", "htpasswd"])
@pytest.mark.parametrize("tls", [False, True], ids=["http", "tls"])
def test_backend_auth_tls_combinations(tmp_path, backend, htpasswd, tls):
    overrides = {**(AZURE if backend == "azure" else {}), **(TLS if tls else {}),
                 **(htpasswd_overrides(tmp_path) if htpasswd else {})}
    s = load(tmp_path, **overrides)
    text, doc = rendered(s)

    driver = ({"azure": {"accountname": "mirroracct", "accountkey": "c2VjcmV0LWtleQ==",
                         "container": "registry-cache-dockerhub", "realm": "core.windows.net",
                         "credentials": {"type": "shared_key"}}}
              if backend == "azure" else FILESYSTEM_STORAGE)
    # an object store's layers go through the registry unless redirects are asked for
    redirect = {"redirect": {"disable": True}} if backend == "azure" else {}
    common = COMMON_STORAGE
    if backend == "azure":   # on object stores the collection purges uploads, not the registry
        common = {**COMMON_STORAGE, "maintenance": {"uploadpurging": {
            **COMMON_STORAGE["maintenance"]["uploadpurging"], "enabled": False}}}
    assert doc["storage"] == {**driver, **common, **redirect}

    http = {"addr": "127.0.0.1:5000", "secret": SECRET,
            "headers": {"X-Content-Type-Options": ["nosniff"]},
            "debug": {"addr": "127.0.0.1:15000",
                      "prometheus": {"enabled": True, "path": "/metrics"}}}
    if tls:
        http["tls"] = {"certificate": render.CONTAINER_TLS_CERT, "key": render.CONTAINER_TLS_KEY}
    assert doc["http"] == http

    if htpasswd:
        assert doc["auth"] == {"htpasswd": {"realm": "docker-mirror",
                                            "path": render.CONTAINER_HTPASSWD}}
    else:
        assert "auth" not in doc
    assert doc["proxy"] == {"remoteurl": DOCKER_HUB_URL}
    assert doc["health"] == HEALTH
    assert doc["version"] == 0.1
    assert doc["log"] == {"level": "info", "fields": {"service": "registry", "upstream": "dockerhub"}}
    assert set(doc) == {"version", "log", "storage", "http", "proxy", "health"} | (
        {"auth"} if htpasswd else set())
    assert_no_cors(text, doc)


@pytest.mark.parametrize("major", [2, 3])
@pytest.mark.parametrize("mode", [L.PULL_THROUGH, L.OFFLINE, L.PLAIN])
def test_modes_and_major_versions(tmp_path, mode, major):
    s = load(tmp_path)
    text, doc = rendered(s, mode=mode, major=major)

    maintenance = doc["storage"]["maintenance"]
    if mode == L.OFFLINE:
        assert maintenance["readonly"] == {"enabled": True}
    else:
        assert "readonly" not in maintenance
    assert maintenance["uploadpurging"]["enabled"] is True
    # the registry's own expiry must never delete (the lifecycle policy does), in every mode
    assert doc["storage"]["delete"] == {"enabled": False}

    if mode == L.PULL_THROUGH:
        expected = {"remoteurl": DOCKER_HUB_URL}
        if major == 3:
            expected["ttl"] = render.PROXY_TTL
        assert doc["proxy"] == expected
    else:
        assert "proxy" not in doc
        assert DOCKER_HUB_URL not in text
    assert_no_cors(text, doc)


def test_storage_redirect_only_when_asked_for(tmp_path):
    on = load(tmp_path, **AZURE, DOCKER_MIRROR_STORAGE_REDIRECT=True)
    assert "redirect" not in rendered(on)[1]["storage"]   # distribution's default: redirect
    assert "redirect" not in rendered(load(tmp_path))[1]["storage"]   # filesystem never redirects


def test_proxy_credentials_only_when_a_username_is_set(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_DOCKERHUB_USERNAME="mirrorbot",
             DOCKER_MIRROR_DOCKERHUB_PASSWORD="dckr_pat_123")
    assert rendered(s)[1]["proxy"] == {"remoteurl": DOCKER_HUB_URL, "username": "mirrorbot",
                                       "password": "dckr_pat_123"}
    # a password without a user name authenticates nobody: leave both out
    s = load(tmp_path, DOCKER_MIRROR_DOCKERHUB_PASSWORD="dckr_pat_123")
    text, doc = rendered(s)
    assert doc["proxy"] == {"remoteurl": DOCKER_HUB_URL}
    assert "dckr_pat_123" not in text


@pytest.mark.parametrize("bind, addr, debug", [
    ("127.0.0.1", "127.0.0.1:5000", "127.0.0.1:15000"),
    ("0.0.0.0", "0.0.0.0:5000", "127.0.0.1:15000"),
    ("192.168.122.10", "192.168.122.10:5000", "127.0.0.1:15000"),
    ("::", "[::]:5000", "127.0.0.1:15000"),
    ("fe80::1", "[fe80::1]:5000", "127.0.0.1:15000"),
])
def test_listen_address_and_loopback_debug_address(tmp_path, bind, addr, debug):
    doc = rendered(load(tmp_path, DOCKER_MIRROR_BIND_ADDRESS=bind))[1]
    assert (doc["http"]["addr"], doc["http"]["debug"]["addr"]) == (addr, debug)


def test_each_upstream_gets_its_own_port_key_and_remote(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_PORT=6000, DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_GHCR_PORT=0,
             DOCKER_MIRROR_GHCR_REMOTE_URL="https://ghcr.io")
    doc = rendered(s, s.upstream("ghcr"))[1]
    assert doc["http"]["addr"] == "127.0.0.1:6001"
    assert doc["http"]["debug"]["addr"] == "127.0.0.1:16001"
    assert doc["log"]["fields"]["upstream"] == "ghcr"
    assert doc["proxy"]["remoteurl"] == "https://ghcr.io"


def test_unknown_mode_or_major_is_refused(tmp_path):
    s = load(tmp_path)
    with pytest.raises(ValueError, match="mode"):
        rendered(s, mode="proxy")
    with pytest.raises(ValueError, match="major"):
        rendered(s, major=1)


def test_hostile_strings_from_dotconfig_round_trip(tmp_path):
    # The azure names and key are checked against Azure's rules by the loader
    # (tests/config/test_storage_azure.py); the settings test below feeds
    # them hostile values past it.
    s = load(tmp_path, **{**AZURE, "DOCKER_MIRROR_DOCKERHUB_USERNAME": CONFIG_HOSTILE + "u",
                          "DOCKER_MIRROR_DOCKERHUB_PASSWORD": CONFIG_HOSTILE + "p"})
    text, doc = rendered(s, secret=CONFIG_HOSTILE + "s")
    assert doc["proxy"]["username"] == CONFIG_HOSTILE + "u"
    assert doc["proxy"]["password"] == CONFIG_HOSTILE + "p"
    assert doc["http"]["secret"] == CONFIG_HOSTILE + "s"
    assert text.isascii()


def test_hostile_strings_in_settings_round_trip(tmp_path):
    # Line breaks, NUL and the like cannot come through a .config line, but
    # the renderer must not depend on the loader having refused them.
    s = load(tmp_path, **AZURE)
    upstream = dataclasses.replace(s.upstreams[0], remote_url="https://h:1/p" + HOSTILE,
                                   username="u" + HOSTILE, password=HOSTILE)
    storage = dataclasses.replace(s.storage, azure_account_name=HOSTILE,
                                  azure_account_key=HOSTILE + "k", azure_container=HOSTILE + "c",
                                  azure_realm=HOSTILE + "r")
    s = dataclasses.replace(s, storage=storage, upstreams=(upstream,))
    text, doc = rendered(s, upstream, secret=HOSTILE)
    assert doc["proxy"] == {"remoteurl": "https://h:1/p" + HOSTILE, "username": "u" + HOSTILE,
                            "password": HOSTILE}
    assert doc["storage"]["azure"] == {"accountname": HOSTILE, "accountkey": HOSTILE + "k",
                                       "container": HOSTILE + "c-dockerhub",
                                       "realm": HOSTILE + "r",
                                       "credentials": {"type": "shared_key"}}
    assert doc["http"]["secret"] == HOSTILE
    # the structure did not move: the same keys as with tame values
    assert set(doc) == {"version", "log", "storage", "http", "proxy", "health"}


@hsettings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",))))
def test_yaml_str_round_trips_any_text(value):
    quoted = render.yaml_str(value)
    assert quoted.isascii() and "\n" not in quoted
    assert yaml.safe_load(f"key: {quoted}\nnext: 1\n") == {"key": value, "next": 1}


def test_yaml_str_refuses_non_strings():
    with pytest.raises(TypeError):
        render.yaml_str(5000)


# ----------------------------------------------- the real registry (2.8.2)

def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def mirror_port() -> int:
    """A free port whose debug port (endpoint.debug_port) is free too."""
    for _ in range(100):
        port = free_port()
        if port_is_free(endpoint.debug_port(port)):
            return port
    raise RuntimeError("no free port pair for a mirror and its debug server")


def host_paths(text: str, mapping: dict[str, Path]) -> str:
    """Point the container-side paths of a rendered config at host paths.

    The text is edited, not loaded and dumped again, so the registry parses
    the template's own quoting (the host paths below are hostile on purpose).
    """
    for container_path, host_path in mapping.items():
        quoted = render.yaml_str(container_path)
        assert text.count(quoted) == 1, container_path
        text = text.replace(quoted, render.yaml_str(str(host_path)))
    return text


@contextmanager
def registry_process(config_text: str, workdir: Path):
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.yml"
    config.write_text(config_text)
    log = workdir / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([mirror_binary(), "serve", str(config)], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def wait_until(proc, log: Path, url: str, status: int, timeout: float = 15, **kwargs):
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            response = requests.get(url, timeout=2, **kwargs)
            if response.status_code == status:
                return response
            last = f"HTTP {response.status_code}"
        except requests.RequestException as err:
            last = str(err)
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer {status} within {timeout}s ({last}); "
                         f"registry exit code {proc.poll()}:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def hostile_dir(tmp_path) -> Path:
    return tmp_path / 'cache "q:o #\\é\tx\ny'


def test_pull_through_config_runs_a_real_proxy(tmp_path, make_upstream, hostile_dir):
    upstream = make_upstream("upstream")
    digest = push_image(upstream.url, "library/busybox", "1.36")
    port = mirror_port()
    s = load(tmp_path, DOCKER_MIRROR_PORT=port, DOCKER_MIRROR_DOCKERHUB_REMOTE_URL=upstream.url)
    text = host_paths(render.registry_config(s, s.upstreams[0], major=2, mode=L.PULL_THROUGH,
                                             http_secret=SECRET),
                      {render.CONTAINER_STORAGE: hostile_dir})

    with registry_process(text, tmp_path / "mirror") as (proc, log):
        base = f"http://127.0.0.1:{port}"
        wait_until(proc, log, f"{base}/v2/", 200)
        metrics = wait_until(proc, log, f"http://127.0.0.1:{endpoint.debug_port(port)}/metrics", 200)
        assert "# TYPE" in metrics.text
        pulled = requests.get(f"{base}/v2/library/busybox/manifests/1.36",
                              headers={"Accept": MANIFEST_V2}, timeout=30)
        assert pulled.status_code == 200, pulled.text
        assert pulled.headers["Docker-Content-Digest"] == digest
        assert requests.get(f"{base}/v2/", timeout=5).headers.get("X-Content-Type-Options") == "nosniff"
    # The registry wrote its cache exactly where the hostile quoted path says:
    # its Go YAML parser read the template's escapes as PyYAML does.
    assert (hostile_dir / "docker/registry/v2/repositories/library/busybox").is_dir()


def test_plain_then_offline_configs_on_real_registry(tmp_path, hostile_dir):
    # No upstream runs anywhere in this test; the remote URL names a dead port.
    port = mirror_port()
    s = load(tmp_path, DOCKER_MIRROR_PORT=port,
             DOCKER_MIRROR_DOCKERHUB_REMOTE_URL=f"http://127.0.0.1:{free_port()}")
    base = f"http://127.0.0.1:{port}"

    def config(mode):
        return host_paths(render.registry_config(s, s.upstreams[0], major=2, mode=mode,
                                                 http_secret=SECRET),
                          {render.CONTAINER_STORAGE: hostile_dir})

    # A plain registry on the storage accepts pushes: fill the cache that way.
    with registry_process(config(L.PLAIN), tmp_path / "plain") as (proc, log):
        wait_until(proc, log, f"{base}/v2/", 200)
        digest = push_image(base, "library/alpine", "3.19")
        assert requests.post(f"{base}/v2/library/alpine/blobs/uploads/", timeout=10).status_code == 202

    with registry_process(config(L.OFFLINE), tmp_path / "offline") as (proc, log):
        wait_until(proc, log, f"{base}/v2/", 200)
        served = requests.get(f"{base}/v2/library/alpine/manifests/3.19",
                              headers={"Accept": MANIFEST_V2}, timeout=10)
        assert served.status_code == 200, served.text
        assert served.headers["Docker-Content-Digest"] == digest
        # read-only: the same request got 202 from the plain instance above
        upload = requests.post(f"{base}/v2/library/alpine/blobs/uploads/", timeout=10)
        assert upload.status_code == 405, upload.text
        deleted = requests.delete(f"{base}/v2/library/alpine/manifests/{digest}", timeout=10)
        assert deleted.status_code == 405
        assert proc.poll() is None


def test_tls_and_htpasswd_config_on_real_registry(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(certs / "key.pem"),
                    "-out", str(certs / "cert.pem")], check=True, capture_output=True, timeout=30)
    port = mirror_port()
    s = load(tmp_path, DOCKER_MIRROR_PORT=port, **TLS, **htpasswd_overrides(tmp_path))
    text = host_paths(render.registry_config(s, s.upstreams[0], major=2, mode=L.PLAIN,
                                             http_secret=SECRET),
                      {render.CONTAINER_STORAGE: tmp_path / "storage",
                       render.CONTAINER_HTPASSWD: Path(s.htpasswd_path),
                       render.CONTAINER_TLS_CERT: certs / "cert.pem",
                       render.CONTAINER_TLS_KEY: certs / "key.pem"})

    with registry_process(text, tmp_path / "mirror") as (proc, log):
        answer = wait_until(proc, log, f"https://127.0.0.1:{port}/v2/", 401,
                            verify=str(certs / "cert.pem"))
        assert answer.headers["WWW-Authenticate"] == 'Basic realm="docker-mirror"'


# ------------------------------------------------------------ systemd units

def unit_entries(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for each setting line of a unit file."""
    entries, section = [], None
    for line in text.splitlines():
        if not line.strip() or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key, value))
    return entries


def unit_value(text: str, section: str, key: str) -> str:
    found = [v for s, k, v in unit_entries(text) if (s, k) == (section, key)]
    assert len(found) == 1, (section, key, found)
    return found[0]


def exec_words(value: str) -> list[str]:
    """An ExecStart= line split and unescaped as systemd does for these words."""
    return [word.replace("%%", "%").replace("$$", "$") if i else word.replace("%%", "%")
            for i, word in enumerate(shlex.split(value))]


def systemd_verify(directory: Path, texts: dict[str, str]) -> subprocess.CompletedProcess:
    """Write the unit files `texts` into `directory` and run `systemd-analyze verify` on them."""
    directory.mkdir(exist_ok=True)
    for name, text in texts.items():
        (directory / name).write_text(text)
    return subprocess.run(["/usr/bin/systemd-analyze", "verify", *(str(directory / n) for n in texts)],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def units(tmp_path):
    # Spaces and % in the executable's path: systemd-analyze only finds it
    # when the quoting and the %% escaping are both right ("%z" is no specifier).
    odd = tmp_path / "p y%z"
    odd.mkdir()
    python = odd / "python"
    python.symlink_to(sys.executable)
    config_path = str(tmp_path / 'my "mirror" $HOME %n.config')
    s = load(tmp_path, DOCKER_MIRROR_REFRESH_ON_CALENDAR="Mon..Fri *-*-* 03:30:00",
             DOCKER_MIRROR_PATH="/srv/docker mirror/100%")
    context = dict(python=str(python), workdir=str(odd), config_path=config_path)
    texts = render.unit_files(s, **context)
    assert list(texts) == ["docker-mirror-keeper.service", "docker-mirror-refresh.service",
                           "docker-mirror-refresh.timer"]
    return tmp_path / "units", texts, context


def test_units_pass_systemd_analyze_verify(units):
    directory, texts, _ = units
    result = systemd_verify(directory, texts)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not any(name in result.stderr for name in texts), result.stderr


def test_refresh_service_and_timer(units):
    _, texts, context = units
    service = texts["docker-mirror-refresh.service"]
    assert unit_value(service, "Service", "Type") == "oneshot"
    assert not any(k == "Restart" for _, k, _ in unit_entries(service))
    assert exec_words(unit_value(service, "Service", "ExecStart")) == [
        context["python"], "-m", "mirror", "--config", context["config_path"], "refresh"]
    assert unit_value(service, "Service", "WorkingDirectory").replace("%%", "%") == context["workdir"]
    for key, value in [("Nice", "19"), ("IOSchedulingClass", "idle"),
                       ("CPUSchedulingPolicy", "batch"), ("TimeoutStartSec", "6h")]:
        assert unit_value(service, "Service", key) == value
    assert unit_value(service, "Unit", "After").split() == ["docker.service", "network-online.target"]
    assert unit_value(service, "Unit", "Wants") == "network-online.target"
    assert "/srv/docker mirror/100%%" in unit_value(service, "Unit", "Description")
    assert "flock" in service  # the comment saying why there is no overlap guard here

    timer = texts["docker-mirror-refresh.timer"]
    assert unit_value(timer, "Timer", "OnCalendar") == "Mon..Fri *-*-* 03:30:00"
    assert unit_value(timer, "Timer", "Persistent") == "true"
    assert unit_value(timer, "Timer", "RandomizedDelaySec") == "15min"
    assert unit_value(timer, "Timer", "Unit") == "docker-mirror-refresh.service"
    assert unit_value(timer, "Install", "WantedBy") == "timers.target"


@pytest.mark.parametrize("delay, expected", [(0, None), (1, "1min"), (15, "15min"), (720, "720min")])
def test_timer_random_delay_follows_the_setting(tmp_path, delay, expected):
    timer = render.refresh_timer(load(tmp_path, DOCKER_MIRROR_REFRESH_RANDOM_DELAY=delay))
    delays = [v for section, k, v in unit_entries(timer) if (section, k) == ("Timer", "RandomizedDelaySec")]
    assert delays == ([expected] if expected else [])  # 0: no line at all, the timer fires when due
    accuracy = [v for section, k, v in unit_entries(timer) if (section, k) == ("Timer", "AccuracySec")]
    assert accuracy == ([] if expected else ["1s"])   # when due: not up to systemd's default minute late
    assert unit_value(timer, "Timer", "OnCalendar") == "*-*-* 02:00:00"


def test_human_size():
    assert [render.human_size(n) for n in (0, 1023, 1536, 5 << 20, 3 << 30, 2 << 40, 999.6)] == \
        ["0 B", "1023 B", "1.5 KiB", "5.0 MiB", "3.0 GiB", "2.0 TiB", "1000 B"]


def test_keeper_service(units):
    _, texts, context = units
    keeper = texts["docker-mirror-keeper.service"]
    # Long-running and restarted by systemd: the keeper outlives engine restarts and its own crashes.
    assert unit_value(keeper, "Service", "Type") == "simple"
    assert unit_value(keeper, "Service", "Restart") == "on-failure"   # not after a clean stop
    # Wants=, not Requires=: a stopped engine must not stop the keeper that waits for it.
    assert not any(k == "Requires" for _, k, _ in unit_entries(keeper))
    assert unit_value(keeper, "Unit", "Wants").split() == ["docker.service", "network-online.target"]
    # remote-fs.target: a mirror directory on NFS is there before the keeper, which stops without it.
    assert unit_value(keeper, "Unit", "After").split() == ["docker.service", "network-online.target",
                                                          "remote-fs.target"]
    assert exec_words(unit_value(keeper, "Service", "ExecStart")) == [
        context["python"], "-m", "mirror", "--config", context["config_path"], "keeper"]
    assert unit_value(keeper, "Install", "WantedBy") == "multi-user.target"
    # A late local mount (nofail, LUKS, USB, automount) of the mirror directory: systemd mounts
    # it before the keeper starts, which would find the directory gone and stop for good.
    # One word, quoted (a space), % escaped; systemd-analyze verify checks it (test above).
    assert unit_value(keeper, "Unit", "RequiresMountsFor") == '"/srv/docker mirror/100%%"'


def test_without_the_keeper_the_unit_runs_the_boot_path_once(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_KEEPER=False)
    boot = render.unit_files(s, python="/usr/bin/python3", workdir="/srv",
                             config_path="/srv/.config")["docker-mirror-keeper.service"]
    assert unit_value(boot, "Service", "Type") == "oneshot"
    assert unit_value(boot, "Service", "RemainAfterExit") == "yes"
    assert unit_value(boot, "Unit", "Requires") == "docker.service"
    assert not any(k == "Restart" for _, k, _ in unit_entries(boot))
    assert exec_words(unit_value(boot, "Service", "ExecStart")) == [
        "/usr/bin/python3", "-m", "mirror", "--config", "/srv/.config", "docker-mirror", "--boot"]
    verified = systemd_verify(tmp_path / "units", {"docker-mirror-keeper.service": boot})
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_units_pass_the_command_line_overrides_on(tmp_path):
    s = load(tmp_path)
    units = render.unit_files(s, python="/usr/bin/python3", workdir="/srv",
                              config_path=os.path.abspath(s.config_path),
                              mirror_args=("--path", "/srv/my mirror", "--port", "5100"))
    for name, verb in (("docker-mirror-keeper.service", "keeper"), ("docker-mirror-refresh.service", "refresh")):
        assert exec_words(unit_value(units[name], "Service", "ExecStart"))[-5:] == [
            verb, "--path", "/srv/my mirror", "--port", "5100"], name
        # remove finds this mirror's units, and only them, by this mark
        assert render.unit_marker(s) in units[name]
        (tmp_path / "other").mkdir(exist_ok=True)
        assert render.unit_marker(load(tmp_path / "other")) not in units[name]


def test_refresh_off_means_the_keeper_unit_alone(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_REFRESH=False)
    assert list(render.unit_files(s, python="/usr/bin/python3", workdir="/srv",
                                  config_path="/srv/.config")) == ["docker-mirror-keeper.service"]


def test_systemd_filters():
    assert render.systemd_arg("/plain/path.config") == "/plain/path.config"
    assert render.systemd_arg('/a b/"q"\\ 5% $X') == '"/a b/\\"q\\"\\\\ 5%% $$X"'
    assert render.systemd_arg("") == '""'
    # no $ expansion in the executable, so no $$ there
    assert render.systemd_exec("/opt/py 3/$bin%") == '"/opt/py 3/$bin%%"'
    assert render.systemd_value("*-*-* 02:00 %") == "*-*-* 02:00 %%"


@pytest.mark.parametrize("python, workdir, config_path", [
    ("/opt/py\"thon/bin/python3", "/srv", "/srv/.config"),   # systemd refuses such executables
    ("/usr/bin/python3", "/srv/a\nb", "/srv/.config"),         # no escape for a line break
    ("/usr/bin/python3", "/srv", "/srv/.config\\"),            # would join the next line
])
def test_units_refuse_values_systemd_cannot_hold(tmp_path, python, workdir, config_path):
    s = load(tmp_path)
    with pytest.raises(ValueError):
        render.refresh_service(s, python=python, workdir=workdir, config_path=config_path)


# ------------------------------------------------------------ NFS exports

def exportfs_tokens(line: str) -> list[str]:
    """Whitespace-separated words as nfs-utils' xgettok reads them: '"' toggles
    quoting, and \\NNN (three octal digits) is one byte."""
    words, word, quoted, started = [], bytearray(), False, False
    data = line.encode()
    i = 0
    while i < len(data):
        c = data[i:i + 1]
        if c == b'"':
            quoted, started = not quoted, True
        elif c.isspace() and not quoted:
            if started:
                words.append(word.decode())
            word, started = bytearray(), False
        elif c == b"\\" and len(data) >= i + 4 and all(48 <= b <= 55 for b in data[i + 1:i + 4]):
            word.append(int(data[i + 1:i + 4], 8))
            i += 3
            started = True
        else:
            word += c
            started = True
        i += 1
    if started:
        words.append(word.decode())
    return words


def export_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_nfs_exports_read_only_to_each_client(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_NFS_EXPORT=True,
             DOCKER_MIRROR_NFS_CLIENTS="192.168.122.0/24  builder.example.com")
    text = render.nfs_exports(s)
    assert text.startswith("# Generated")
    [line] = export_lines(text)
    assert line.startswith('"/mirror/docker" ')
    assert exportfs_tokens(line) == ["/mirror/docker",
                                     "192.168.122.0/24(ro,no_subtree_check,root_squash)",
                                     "builder.example.com(ro,no_subtree_check,root_squash)"]
    assert "rw" not in line.split('"')[-1]


def test_nfs_exports_path_with_spaces_quotes_and_hash(tmp_path):
    path = '/srv/my "docker" mirror #1\\x'
    s = load(tmp_path, DOCKER_MIRROR_PATH=path, DOCKER_MIRROR_NFS_EXPORT=True,
             DOCKER_MIRROR_NFS_CLIENTS="10.0.0.5")
    [line] = export_lines(render.nfs_exports(s))
    assert exportfs_tokens(line) == [path, "10.0.0.5(ro,no_subtree_check,root_squash)"]


def test_nfs_exports_refuses_an_empty_client_list(tmp_path):
    # exports(5) reads a path with no client as "export to every host"
    with pytest.raises(ValueError, match="NFS"):
        render.nfs_exports(load(tmp_path))
