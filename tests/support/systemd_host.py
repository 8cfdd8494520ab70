"""A Debian host with systemd as PID 1, booted as a container, for tests and benchmarks.

The root file system is built from the distribution's packages with
`mmdebstrap` (systemd, the Docker engine, and every package
`scripts/install-deps.sh` checks for, so that the Quick start inside needs no
apt download), imported into the local Docker engine as
`dmtest-systemd-host:<recipe hash>`, and reused: it is built only when no
image of the current recipe exists (about 40 s from scratch).

The container runs with the flags that work on this kind of machine
(`--privileged` does not: the sandbox lacks CAP_SYS_RESOURCE; the host uses
cgroup v1), and with the host's network (`--network host`): the mirror it
runs is reached on 127.0.0.1 from the host, and it reaches an upstream
registry on the host's loopback and the package registries as the host does.

The nested Docker engine shares the host's network namespace, so its
daemon.json keeps it from touching that namespace: no iptables, no IP
forwarding, no masquerading, and its default bridge is `dmtestsd0`, a bridge
this module makes (address 198.18.249.1/30, from the benchmarking range, no
ports, no traffic). It cannot be `"bridge": "none"`: with that setting dockerd
deletes any interface named docker0 at start (`removeDefaultBridgeInterface`),
and in the host's namespace that is the *host* engine's bridge (seen here).
Nor the default: it would take over the host's docker0. Its graph driver is
`vfs`: overlay2 cannot stack on the container's overlay root ("failed to
mount overlay: invalid argument ... error initializing graphdriver: driver
not supported", seen here).

Nothing here imports the product: it is driven from outside, through
`docker exec` (make, scripts/quickstart.sh, systemctl) and HTTP.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INSTALL_DEPS = ROOT / "scripts" / "install-deps.sh"

PREFIX = "dmtest-systemd"
IMAGE_REPO = "dmtest-systemd-host"
CACHE_DIR = Path(os.environ.get("DMTEST_SYSTEMD_CACHE", "/var/cache/docker-mirror-tests"))
PRODUCT_DIR = "/opt/docker-mirror"

SUITE = "bookworm"
APT_SOURCES = Path("/etc/apt/sources.list.d")
# What the host needs beyond install-deps.sh's own list (read from the script).
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "docker.io", "containerd", "python3",
                 "python3-venv", "python3-pip", "make", "iproute2", "procps", "ca-certificates",
                 "curl")

BRIDGE = "dmtestsd0"
BRIDGE_ADDRESS = "198.18.249.1/30"
DAEMON_JSON = {
    "storage-driver": "vfs",
    "iptables": False,
    "ip6tables": False,
    "ip-forward": False,
    "ip-masq": False,
    "bridge": BRIDGE,
    # Nested containers' cgroups apart from the host engine's /docker tree.
    "cgroup-parent": "/dmtest-systemd-nested",
}
# Units of the packages that must not run in the test host, which shares this host's
# network: docker-registry, prometheus and redis-server would take ports the tests use
# (docker-registry :5000, the mirror's own), haproxy and redis-server fail to start and
# degrade the boot, and the apt timers would download package lists. podman's units (its
# restart and auto-update services, its socket) fail in the nested host and degrade it too.
MASKED_UNITS = ("docker-registry.service", "prometheus.service", "prometheus-node-exporter.service",
                "redis-server.service", "haproxy.service", "apt-daily.timer", "apt-daily-upgrade.timer",
                "podman.service", "podman.socket", "podman-restart.service", "podman-auto-update.service",
                "podman-auto-update.timer")

RUN_FLAGS = (
    "--network", "host",
    "--stop-signal", "SIGRTMIN+3",  # systemd's "halt"
    "--cap-add=ALL", "--cap-drop=SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined",
    "--security-opt", "apparmor=unconfined",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
    "--tmpfs", "/run", "--tmpfs", "/run/lock",
)


class HostError(RuntimeError):
    pass


def _run(argv, *, check=True, timeout=120, input=None, text=True, **kwargs) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(argv, capture_output=True, text=text, timeout=timeout, input=input,
                              **kwargs)
    except subprocess.TimeoutExpired as err:
        out = err.stdout.decode(errors="replace") if isinstance(err.stdout, bytes) else (err.stdout or "")
        raise HostError(f"timed out after {timeout}s: {' '.join(map(str, argv))}\n{out}") from None
    if check and done.returncode != 0:
        raise HostError(f"exit {done.returncode}: {' '.join(map(str, argv))}\n"
                        f"{done.stdout if text else ''}{done.stderr if text else ''}")
    return done


# ---------------------------------------------------------------- the root file system


def install_deps_packages(script: Path = INSTALL_DEPS) -> list[str]:
    """The Debian packages scripts/install-deps.sh checks for (its `for pkg in ...` line)."""
    text = script.read_text()
    found = re.search(r"^\s*for pkg in ([^;\n]+); do", text, re.M)
    if not found:
        raise HostError(f"{script}: no 'for pkg in ...; do' line: cannot tell which packages "
                        "the Quick start installs")
    return found.group(1).split()


def apt_sources() -> list[Path]:
    """This host's own package sources, as apt here is set up: the root fs comes from
    the same registry (mmdebstrap reads sources files given as its mirror)."""
    found = sorted(APT_SOURCES.glob("*.sources")) + sorted(APT_SOURCES.glob("*.list"))
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file() and legacy.read_text().strip():
        found.insert(0, legacy)
    if not found:
        raise HostError("this host has no apt sources (/etc/apt/sources.list[.d]): "
                        "the test host is built from the same package registry")
    return found


def recipe() -> dict:
    packages = sorted(set(BASE_PACKAGES) | set(install_deps_packages()))
    sources = {str(path): path.read_text() for path in apt_sources()}
    return {"suite": SUITE, "sources": sources, "variant": "minbase", "packages": packages,
            "daemon_json": DAEMON_JSON, "masked": list(MASKED_UNITS), "format": 1}


def recipe_hash(r: dict | None = None) -> str:
    return hashlib.sha256(json.dumps(r or recipe(), sort_keys=True).encode()).hexdigest()[:12]


def image_tag(r: dict | None = None) -> str:
    return f"{IMAGE_REPO}:{recipe_hash(r)}"


def image_exists(tag: str) -> bool:
    return _run(["docker", "image", "inspect", tag], check=False).returncode == 0


def _customize_hooks(r: dict) -> list[str]:
    daemon_json = json.dumps(r["daemon_json"], indent=2)
    hooks = [f"mkdir -p \"$1/etc/docker\" && printf '%s\\n' '{daemon_json}' > \"$1/etc/docker/daemon.json\""]
    for unit in r["masked"]:
        hooks.append(f"ln -sf /dev/null \"$1/etc/systemd/system/{unit}\"")
    # A fresh machine id per boot of a new container, as on a first boot.
    hooks.append(": > \"$1/etc/machine-id\"")
    return hooks


def build_image(log=print) -> str:
    """The tag of the root-fs image for the current recipe, built when missing.

    A lock keeps two processes (a test run and a benchmark) from building it
    at the same time; the tar is deleted once imported.
    """
    r = recipe()
    tag = image_tag(r)
    if image_exists(tag):
        return tag
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image_exists(tag):
            return tag
        if not shutil.which("mmdebstrap"):
            raise HostError("mmdebstrap is missing: it builds the systemd test host "
                            "(apt-get install -y mmdebstrap; scripts/install-deps.sh installs it)")
        tar = CACHE_DIR / f"{recipe_hash(r)}.tar"
        build_log = CACHE_DIR / f"{recipe_hash(r)}.log"
        argv = ["mmdebstrap", f"--variant={r['variant']}", "--include=" + ",".join(r["packages"])]
        for hook in _customize_hooks(r):
            argv.append(f"--customize-hook={hook}")
        argv += [r["suite"], str(tar), *r["sources"]]
        log(f"building {tag} with mmdebstrap ({len(r['packages'])} packages; log {build_log})")
        started = time.monotonic()
        with open(build_log, "w") as out:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  timeout=900)
        if done.returncode != 0:
            tar.unlink(missing_ok=True)
            tail = "\n".join(build_log.read_text(errors="replace").splitlines()[-40:])
            raise HostError(f"mmdebstrap failed (exit {done.returncode}):\n{tail}")
        try:
            _run(["docker", "import", "-c", 'CMD ["/sbin/init"]', "-c", "ENV container=docker",
                  "-c", f"LABEL dmtest.recipe={recipe_hash(r)}", str(tar), tag], timeout=600)
        finally:
            tar.unlink(missing_ok=True)
        log(f"built {tag} in {time.monotonic() - started:.0f} s")
        return tag


# ---------------------------------------------------------------- the product, as a clean tree


def product_tar(root: Path = ROOT, ref: str | None = None, prefix: str = "docker-mirror") -> bytes:
    """The product as `git ls-files` plus untracked files not ignored (no .venv, no .config),
    or, with `ref` (or DMTEST_SYSTEMD_PRODUCT_REF), `git archive` of that commit."""
    ref = ref or os.environ.get("DMTEST_SYSTEMD_PRODUCT_REF") or None
    if ref:
        return _run(["git", "-C", str(root), "archive", f"--prefix={prefix}/", ref], text=False,
                    timeout=60).stdout
    listed = _run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                   "--exclude-standard"], timeout=60).stdout
    skip = {".config", ".config.old", "extra_vars.yaml", "defconfig"}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name in sorted(set(filter(None, listed.split("\0")))):
            path = root / name
            if name in skip or not (path.is_file() or path.is_symlink()):
                continue  # deleted in the work tree, or a directory entry
            info = tar.gettarinfo(str(path), arcname=f"{prefix}/{name}")
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if info.isfile():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return raw.getvalue()


# ---------------------------------------------------------------- host networking


def ensure_bridge() -> None:
    """The nested engines' default bridge (see the module docstring); idempotent."""
    if _run(["ip", "link", "show", BRIDGE], check=False).returncode != 0:
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=False)
    addresses = _run(["ip", "-o", "-4", "addr", "show", "dev", BRIDGE]).stdout
    if BRIDGE_ADDRESS not in addresses:
        _run(["ip", "addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE])


def remove_bridge_if_unused() -> None:
    """Once no test host runs: the bridge, and the nested engines' (empty) cgroup parents."""
    running = _run(["docker", "ps", "-q", "--filter", f"label={PREFIX}"], check=False).stdout.split()
    if not running:
        _run(["ip", "link", "del", BRIDGE], check=False)
        parent = DAEMON_JSON["cgroup-parent"].strip("/")
        for directory in Path("/sys/fs/cgroup").glob(f"*/{parent}"):
            with contextlib.suppress(OSError):  # not empty, or not ours to remove
                directory.rmdir()


def docker0_state() -> str:
    """The host engine's bridge as `ip` shows it (the nested engine must leave it alone)."""
    done = _run(["ip", "-br", "-4", "addr", "show", "dev", "docker0"], check=False)
    return done.stdout.split("\n")[0].strip() if done.returncode == 0 else "(missing)"


def free_mirror_port(low: int = 5600, high: int = 5700) -> int:
    """A port for the mirror inside (and its debug port, + 10000) that nobody holds on loopback."""
    def free(port: int) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            return s.connect_ex(("127.0.0.1", port)) != 0

    start = low + (os.getpid() % (high - low))
    for offset in range(high - low):
        port = low + (start - low + offset) % (high - low)
        if free(port) and free(port + 10000):
            return port
    raise HostError(f"no free port pair in {low}-{high} (and +10000) on 127.0.0.1")


def _proxy_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k.lower() in ("http_proxy", "https_proxy", "no_proxy")}


# ---------------------------------------------------------------- the booted host


@dataclass
class SystemdHost:
    """One booted container. `exec`/`sh` run inside it; `reboot` restarts it.

    With `systemd=False` the same root file system runs without systemd (PID 1
    is docker-init and a sleep): a host where the product must start the
    engine and its keeper itself.
    """

    name: str
    image: str
    systemd: bool = True
    started_at: float = 0.0        # time.time() when the last boot was asked for
    boot_seconds: float = 0.0      # from that to systemd's "running"/"degraded"

    # -- lifecycle

    @classmethod
    def boot(cls, name: str | None = None, image: str | None = None, timeout: float = 120,
             systemd: bool = True) -> "SystemdHost":
        image = image or build_image()
        name = name or f"{PREFIX}-{'' if systemd else 'nosd-'}{os.getpid()}"
        _run(["docker", "rm", "-f", "-v", name], check=False)
        ensure_bridge()
        env_flags = [f for k, v in _proxy_env().items() for f in ("-e", f"{k}={v}")]
        command = [image] if systemd else ["--init", image, "sleep", "infinity"]
        _run(["docker", "create", "--name", name, "--label", PREFIX, *RUN_FLAGS,
              *env_flags, *command])
        host = cls(name, image, systemd)
        host._prepare_machine()
        host.start(timeout=timeout)
        host._trust_host_cas()
        return host

    def start(self, timeout: float = 120) -> None:
        self.started_at = time.time()
        _run(["docker", "start", self.name])
        self.wait_booted(timeout)

    def stop(self, timeout: int = 60) -> None:
        _run(["docker", "stop", "-t", str(timeout), self.name], timeout=timeout + 30)

    def reboot(self, timeout: float = 120) -> None:
        """A clean reboot: systemd halts (stopping the engine and its containers), then boots."""
        self.stop()
        self.start(timeout)

    def remove(self) -> None:
        """Halt cleanly (the nested engine stops its containers), then remove; the image stays."""
        with contextlib.suppress(HostError):
            self.stop(timeout=30)
        _run(["docker", "rm", "-f", "-v", self.name], check=False)

    def wait_booted(self, timeout: float = 120) -> str:
        """Wait until systemd finished booting; return `systemctl is-system-running`."""
        deadline = time.monotonic() + timeout
        last = ""
        if not self.systemd:
            if wait_for(lambda: self.exec(["true"], check=False).returncode == 0, timeout):
                self.boot_seconds = time.time() - self.started_at
                return "no systemd"
            raise HostError(f"{self.name} did not start in {timeout}s\n{self.console()}")
        while time.monotonic() < deadline:
            done = self.exec(["systemctl", "is-system-running", "--wait"], check=False,
                             timeout=max(5, deadline - time.monotonic()))
            last = (done.stdout + done.stderr).strip()
            if last in ("running", "degraded", "maintenance", "stopping"):
                self.boot_seconds = time.time() - self.started_at
                return last
            time.sleep(0.2)  # "Failed to connect to bus" until systemd is up
        raise HostError(f"{self.name} did not finish booting in {timeout}s (last: {last!r})\n"
                        f"{self.console()}")

    def system_state(self) -> str:
        if not self.systemd:
            return "no systemd"
        return self.exec(["systemctl", "is-system-running"], check=False).stdout.strip()

    # -- running things inside

    def exec(self, argv, *, check=True, timeout=120, input=None, workdir=None, env=None,
             tty=False) -> subprocess.CompletedProcess:
        flags = ["-i"] if input is not None else []
        if tty:
            flags.append("-t")
        if workdir:
            flags += ["-w", workdir]
        for key, value in {**_proxy_env(), **(env or {})}.items():
            flags += ["-e", f"{key}={value}"]
        return _run(["docker", "exec", *flags, self.name, *argv], check=check, timeout=timeout,
                    input=input)

    def sh(self, script: str, **kwargs) -> subprocess.CompletedProcess:
        return self.exec(["bash", "-c", script], **kwargs)

    def make(self, *targets, check=False, timeout=300, **kwargs) -> subprocess.CompletedProcess:
        """`make -s TARGET...` in the product tree, as a user would type it."""
        return self.exec(["make", "-s", *targets], workdir=PRODUCT_DIR, check=check,
                         timeout=timeout, **kwargs)

    def systemctl(self, *args, check=False, timeout=60) -> subprocess.CompletedProcess:
        return self.exec(["systemctl", "--no-pager", *args], check=check, timeout=timeout)

    def read(self, path: str) -> str | None:
        done = self.exec(["cat", path], check=False)
        return done.stdout if done.returncode == 0 else None

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        self.exec(["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"', "-",
                   path, f"{mode:o}"], input=text)

    def exists(self, path: str) -> bool:
        return self.exec(["test", "-e", path], check=False).returncode == 0

    def copy_tar(self, tar_bytes: bytes, dest_dir: str) -> None:
        """Extract a tar stream into `dest_dir` (made when missing)."""
        self.exec(["mkdir", "-p", dest_dir])
        _run(["docker", "cp", "-", f"{self.name}:{dest_dir}"], input=tar_bytes, text=False,
             timeout=120)

    def install_product(self, tar_bytes: bytes | None = None, dest: str = PRODUCT_DIR) -> None:
        """A clean copy of the product at `dest` (no .venv, no .config)."""
        parent, base = dest.rsplit("/", 1)
        self.exec(["rm", "-rf", dest])
        if tar_bytes is None:
            tar_bytes = product_tar(prefix=base)
        self.copy_tar(tar_bytes, parent or "/")

    def nested_docker(self, *args, check=False, timeout=120) -> subprocess.CompletedProcess:
        return self.exec(["docker", *args], check=check, timeout=timeout)

    def now(self) -> float:
        """The container's clock (epoch seconds)."""
        return float(self.exec(["date", "+%s.%N"]).stdout.strip())

    # -- machine setup the product does not do

    def _prepare_machine(self) -> None:
        """Before the first boot: pip and npm trust what the host trusts (this host reaches
        the package registries through a TLS-intercepting egress; its CA is among the
        host's local CAs)."""
        pip_conf = "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\ntimeout = 180\n"
        npm_conf = "cafile=/etc/ssl/certs/ca-certificates.crt\n"
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            def add(name: str, data: bytes) -> None:
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
            add("etc/pip.conf", pip_conf.encode())
            add("root/.npmrc", npm_conf.encode())   # the user config: every npm version reads it
            local = Path("/usr/local/share/ca-certificates")
            for crt in sorted(local.glob("**/*.crt")) if local.is_dir() else []:
                add(f"usr/local/share/ca-certificates/{crt.relative_to(local)}", crt.read_bytes())
            for conf in sorted(Path("/etc/apt/apt.conf.d").glob("*")):
                with contextlib.suppress(OSError):
                    if re.search(r"(?im)^\s*Acquire::https?::Proxy", conf.read_text()):
                        add(f"etc/apt/apt.conf.d/{conf.name}", conf.read_bytes())
        _run(["docker", "cp", "-", f"{self.name}:/"], input=raw.getvalue(), text=False)

    def _trust_host_cas(self) -> None:
        self.exec(["update-ca-certificates"], timeout=60)

    # -- looking at it

    def console(self, lines: int = 40) -> str:
        done = _run(["docker", "logs", "--tail", str(lines), self.name], check=False)
        return f"--- docker logs {self.name} ---\n{done.stdout}{done.stderr}"

    def journal(self, *units: str, lines: int = 40, since: str | None = None) -> str:
        argv = ["journalctl", "--no-pager", "-o", "short-precise", "-n", str(lines)]
        for unit in units:
            argv += ["-u", unit]
        if since:
            argv += ["--since", since]
        done = self.exec(argv, check=False)
        return done.stdout + done.stderr

    def diagnose(self, units=("docker-mirror-keeper.service", "docker-mirror-refresh.service",
                              "docker-mirror-refresh.timer", "docker.service"), containers=None) -> str:
        """What a person would look at first: failed units, the mirror units' status and
        journal, the nested containers and the last lines of their logs."""
        parts = [f"=== system: {self.system_state()}; docker0 on the host: {docker0_state()}"]
        if not self.systemd:
            procs = self.exec(["ps", "-eo", "pid,ppid,etime,args"], check=False)
            parts.append("=== processes\n" + procs.stdout)
            engine_log = self.exec(["tail", "-n", "15", "/var/log/dockerd.log"], check=False)
            parts.append("=== /var/log/dockerd.log\n" + engine_log.stdout)
            return "\n".join(parts + [self._containers_report(containers)])
        parts.append(self.systemctl("--failed").stdout)
        parts.append(self.systemctl("status", "--lines=15", *units).stdout)
        parts.append(self.systemctl("list-timers", "--all").stdout)
        parts.append("=== journal of docker-mirror*\n" + self.journal("docker-mirror*", lines=40))
        # The engine's journal without its routine chatter (gRPC, "ignoring event").
        engine = self.journal("docker.service", lines=300).splitlines()
        parts.append("=== journal of docker.service (warnings, errors, starts and stops)\n" + "\n".join(
            [l for l in engine if "level=info" not in l and "level=debug" not in l][-20:]))
        return "\n".join(parts + [self._containers_report(containers)])

    def _containers_report(self, containers=None) -> str:
        parts = []
        ps = self.nested_docker("ps", "-a", "--format",
                                "{{.Names}}\t{{.Status}}\t{{.Label \"docker-mirror.mode\"}}")
        parts.append("=== nested containers\n" + ps.stdout + ps.stderr)
        names = containers or [line.split("\t")[0] for line in ps.stdout.splitlines() if line]
        for name in names:
            logs = self.nested_docker("logs", "--tail", "8", name)
            parts.append(f"=== docker logs --tail 8 {name}\n{(logs.stdout + logs.stderr)[-3000:]}")
        return "\n".join(parts)


# ---------------------------------------------------------------- waiting


def wait_for(predicate, timeout: float, interval: float = 0.25):
    """Call `predicate` until it returns something truthy; return it, or None at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def http_status(url: str, timeout: float = 1.0) -> int | None:
    import requests

    try:
        return requests.get(url, timeout=timeout).status_code
    except requests.RequestException:
        return None


def parse_systemd_time(value: str) -> float | None:
    """'Tue 2026-11-24 03:38:13.123456 UTC' (systemctl show --timestamp=us+utc) -> epoch seconds."""
    from datetime import datetime, timezone

    found = re.search(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(\.\d+)? UTC", value or "")
    if not found:
        return None
    stamp = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    return stamp.timestamp() + float(found.group(2) or 0)


# ---------------------------------------------------------------- the mirror inside


IMAGES = {  # synthetic images on the host's upstream, under real names
    "minio/minio": "RELEASE.2023-03-20T20-16-18Z",
    "coreos/etcd": "v3.5.18",
    "vllm/vllm-openai": "v0.8.5",
}
LIST_FILE = "/opt/docker-mirror-images.txt"
MIRROR_ROOT = "/mirror/docker"
LAST_REFRESH = f"{MIRROR_ROOT}/logs/last-refresh.json"
CONTAINER = "docker-mirror-dockerhub"
MODE_LABEL = "docker-mirror.mode"
REFRESH_SERVICE = "docker-mirror-refresh.service"
REFRESH_TIMER = "docker-mirror-refresh.timer"
KEEPER = "docker-mirror-keeper.service"
MANIFEST_ACCEPT = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
])


def defconfig(port: int, remote_url: str, random_delay: int = 0) -> str:
    """The test's settings as a defconfig (only what differs from Kconfig's defaults):
    the Docker Hub mirror on 127.0.0.1:PORT in front of REMOTE_URL, the reference
    images off, the extra list file on, no random delay of the refresh.

    It is installed as the copy's defconfigs/default, so that the Quick start's
    own `make defconfig` (it runs it when there is no .config) writes the full
    .config with the product's Kconfig tools: every other symbol, including ones
    added after this was written, takes its Kconfig default. A .config written
    here by hand would not (the settings loader reads a missing bool as n)."""
    def s(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [
        "# The systemd host test's settings (tests/support/systemd_host.py)",
        f"CONFIG_DOCKER_MIRROR_PORT={port}",
        f"CONFIG_DOCKER_MIRROR_DOCKERHUB_REMOTE_URL={s(remote_url)}",
        *(f"# CONFIG_DOCKER_MIRROR_IMAGE_{name} is not set" for name in ("MINIO", "MILVUS", "REGISTRY")),
        f"CONFIG_DOCKER_MIRROR_IMAGES_EXTRA_LIST={s(LIST_FILE)}",
        f"CONFIG_DOCKER_MIRROR_REFRESH_RANDOM_DELAY={random_delay}",
    ]
    return "\n".join(lines) + "\n"


def calendar_at(epoch: float) -> str:
    """A systemd OnCalendar expression for one exact second (UTC)."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


@dataclass
class MirrorHost:
    """A booted SystemdHost, the product copied in with the test's defconfig, and an
    upstream registry on the host's loopback (stoppable, to act out an outage)."""

    host: SystemdHost
    upstream: object            # support.upstream.UpstreamRegistry
    port: int
    digests: dict[str, str]     # "repo:tag" -> manifest digest on the upstream

    @classmethod
    def create(cls, workdir: Path, name: str | None = None, image: str | None = None,
               systemd: bool = True) -> "MirrorHost":
        from support.upstream import UpstreamRegistry, push_image

        upstream = UpstreamRegistry(Path(workdir) / "hub").start()
        try:
            digests = {f"{repo}:{tag}": push_image(upstream.url, repo, tag)
                       for repo, tag in IMAGES.items()}
            host = SystemdHost.boot(name=name, image=image, systemd=systemd)
        except BaseException:
            upstream.stop()
            raise
        mirror = cls(host, upstream, free_mirror_port(), digests)
        try:
            host.install_product()
            host.write(f"{PRODUCT_DIR}/defconfigs/default", defconfig(mirror.port, upstream.url))
            host.write(LIST_FILE, "# images the test keeps warm\n"
                       + "".join(f"{ref}\n" for ref in digests))
        except BaseException:
            mirror.close()
            raise
        return mirror

    def close(self) -> None:
        try:
            self.host.remove()
        finally:
            self.upstream.stop()
            remove_bridge_if_unused()

    # -- the product

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def quickstart(self, timeout: float = 600) -> subprocess.CompletedProcess:
        """The README's first Quick start command, exactly, in the product tree."""
        return self.host.exec(["scripts/quickstart.sh"], workdir=PRODUCT_DIR, check=False,
                              timeout=timeout)

    def config_text(self) -> str:
        return self.host.read(f"{PRODUCT_DIR}/.config") or ""

    def set_config(self, **symbols) -> subprocess.CompletedProcess:
        """Set symbols in .config (`PORT=5601`, `REFRESH=True`, strings quoted), then
        `make olddefconfig`, as a person editing .config would."""
        text = self.config_text()
        for symbol, value in symbols.items():
            if value is True:
                line = f"CONFIG_{symbol}=y"
            elif value is False:
                line = f"# CONFIG_{symbol} is not set"
            elif isinstance(value, int):
                line = f"CONFIG_{symbol}={value}"
            else:
                line = f'CONFIG_{symbol}="' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
            pattern = re.compile(rf"^(CONFIG_{symbol}=.*|# CONFIG_{symbol} is not set)$", re.M)
            text, found = pattern.subn(lambda _: line, text)
            if not found:
                text += line + "\n"
        self.host.write(f"{PRODUCT_DIR}/.config", text)
        return self.host.make("olddefconfig")

    # -- the refresh

    def last_refresh(self) -> dict | None:
        text = self.host.read(LAST_REFRESH)
        try:
            return json.loads(text) if text else None
        except ValueError:
            return {"unreadable": text}

    def refresh_idle(self) -> bool:
        """No refresh running and none queued."""
        state = self.host.systemctl("is-active", REFRESH_SERVICE).stdout.strip()
        jobs = self.host.systemctl("list-jobs", "--no-legend", REFRESH_SERVICE).stdout.strip()
        return state in ("inactive", "failed") and not jobs

    def wait_refresh_idle(self, timeout: float = 120) -> bool:
        return bool(wait_for(self.refresh_idle, timeout, interval=0.5))

    def unit_times(self, unit: str) -> dict[str, float | None]:
        """ExecMainStart/ExitTimestamp of a unit's last run, in epoch seconds (µs precision)."""
        out = self.host.systemctl("show", unit, "--timestamp=us+utc", "-p", "ExecMainStartTimestamp",
                                  "-p", "ExecMainExitTimestamp", "-p", "ExecMainStatus",
                                  "-p", "Result").stdout
        found = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return {"start": parse_systemd_time(found.get("ExecMainStartTimestamp", "")),
                "exit": parse_systemd_time(found.get("ExecMainExitTimestamp", "")),
                "status": found.get("ExecMainStatus"), "result": found.get("Result")}

    # -- the mirror, from outside

    def answers(self) -> bool:
        return http_status(f"{self.url}/v2/") == 200

    def wait_answering(self, timeout: float) -> bool:
        return bool(wait_for(self.answers, timeout, interval=0.1))

    def containers(self) -> list[str]:
        """This product's registry containers in the nested engine (any state)."""
        out = self.host.nested_docker("ps", "-a", "-q", "--filter", "label=docker-mirror.upstream").stdout
        return out.split()

    def inspect(self, fmt: str, container: str = CONTAINER) -> str | None:
        done = self.host.nested_docker("inspect", "-f", fmt, container)
        return done.stdout.strip() if done.returncode == 0 else None

    def mode(self) -> str | None:
        return self.inspect(f'{{{{index .Config.Labels "{MODE_LABEL}"}}}}')

    def manifest_digest(self, ref: str) -> str | None:
        """The digest the mirror serves for `repo:tag` (HTTP, from the host)."""
        import requests

        repo, tag = ref.rsplit(":", 1)
        try:
            r = requests.get(f"{self.url}/v2/{repo}/manifests/{tag}", timeout=10,
                             headers={"Accept": MANIFEST_ACCEPT})
        except requests.RequestException:
            return None
        return r.headers.get("Docker-Content-Digest") if r.status_code == 200 else None

    def docker_pull(self, ref: str) -> tuple[str | None, str]:
        """`docker pull 127.0.0.1:PORT/REF` by the nested engine, from scratch; returns
        (the digest it recorded, what it said)."""
        local = f"127.0.0.1:{self.port}/{ref}"
        self.host.nested_docker("rmi", "-f", local)
        pulled = self.host.nested_docker("pull", local, timeout=120)
        said = pulled.stdout + pulled.stderr
        if pulled.returncode != 0:
            return None, said
        digests = self.inspect("{{json .RepoDigests}}", container=local) or "[]"
        found = [d.split("@", 1)[1] for d in json.loads(digests) if "@" in d]
        return (found[0] if found else None), said

    def storage_listing(self) -> list[str]:
        """Every file of the cache (path and size), to tell whether it was kept."""
        out = self.host.exec(["find", f"{MIRROR_ROOT}/registry", "-type", "f", "-printf", r"%P %s\n"],
                             check=False).stdout
        return sorted(out.splitlines())

    def installed_unit_files(self) -> list[str]:
        out = self.host.exec(["find", "/etc/systemd/system", "/run/systemd/system", "-name",
                              "docker-mirror*"], check=False).stdout
        return sorted(out.split())
