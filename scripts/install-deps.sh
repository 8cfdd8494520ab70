#!/usr/bin/env bash
# One-shot setup of a fresh Debian/Ubuntu host: system packages, the
# project's virtualenv (with what the tests and 'make docker-mirror-distribute'
# need: pytest, ansible-core), a running Docker engine, and the registry
# engine the mirror runs, built from the distribution's source (make engine).
#   usage: scripts/install-deps.sh [--no-engine]
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export PATH="$PATH:/usr/sbin:/sbin"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

start_engine=1
# Everything the README's second command (make test) needs is installed by the
# first: a newcomer runs exactly what CI runs.
extras=test,fleet
for arg in "$@"; do
	case "$arg" in
	--no-engine) start_engine=0 ;;
	--with-ansible) ;; # the default now; kept so older instructions still work
	-h | --help)
		echo "usage: $0 [--no-engine]"
		exit 0
		;;
	*)
		echo "$0: unknown option '$arg' (usage: $0 [--no-engine])" >&2
		exit 2
		;;
	esac
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi

# Run a noisy command silently, but show everything it said if it fails.
quietly() {
	local out
	out=$(mktemp)
	if ! "$@" >"$out" 2>&1; then
		cat "$out" >&2
		rm -f "$out"
		echo "$0: failed: $*" >&2
		return 1
	fi
	rm -f "$out"
}

# A package counts as present when what we use from it is there, so a host
# with Docker's own docker-ce/containerd.io is not pushed onto conflicting
# Debian packages.
has() {
	case "$1" in
	python3-venv) python3 -c 'import ensurepip, venv' >/dev/null 2>&1 ;;
	python3-pip) dpkg-query -W -f='${Status}' python3-pip 2>/dev/null | grep -q 'ok installed' ;;
	docker.io) command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1 ;;
	containerd) command -v ctr >/dev/null 2>&1 ;;
	systemd) command -v systemd-analyze >/dev/null 2>&1 ;;
	iproute2) command -v ip >/dev/null 2>&1 ;;
	nodejs) command -v node >/dev/null 2>&1 ;;
	dpkg-dev) command -v dpkg-source >/dev/null 2>&1 ;;
	haproxy) [ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null 2>&1 ;;
	redis-server) [ -x /usr/bin/redis-server ] || command -v redis-server >/dev/null 2>&1 ;;
	apache2-utils) command -v htpasswd >/dev/null 2>&1 ;;
	*) command -v "$1" >/dev/null 2>&1 ;;
	esac
}

missing=()
# mmdebstrap: the tests build a Debian root file system to boot systemd as PID 1.
# prometheus, chromium: the tests scrape the metrics and load the status page with them.
# iproute2, curl: tests/test_lan.py reaches a LAN mirror from a network namespace of its own.
# nodejs, npm: Azurite (below), the Azure Blob service the azure backend's tests use.
# openssl: the tests check the generated CA and certificates (and make given ones) with it.
# haproxy, redis-server: with DOCKER_MIRROR_REPLICAS > 1, their images are built from these binaries.
# dpkg-dev: dpkg-source unpacks docker-registry's source package, which the registry engine is built from.
# apache2-utils: its htpasswd -B writes the entries that tests/host/test_bcrypt_entries.py checks.
# podman, buildah: with skopeo, the containers/image clients tests/commands/test_clients_containers.py
# pulls through the mirror with (about 13 s more to install on a fresh machine).
for pkg in make python3 python3-venv python3-pip docker.io docker-registry skopeo containerd tmux git systemd mmdebstrap prometheus chromium iproute2 curl nodejs npm openssl haproxy redis-server dpkg-dev apache2-utils podman buildah; do
	has "$pkg" || missing+=("$pkg")
done

# The registry engine is built from docker-registry's source package, which apt fetches only
# through a deb-src source: one of the product's own where the machine has none
# (mirror/engine/apt_source.py, standard library only), added before the one apt-get update.
update=0
if has python3 && src_added=$(PYTHONPATH="$ROOT" $SUDO python3 -m mirror.engine.apt_source); then
	if [ -n "$src_added" ]; then
		echo "$src_added"
		update=1
	fi
fi

if [ "${#missing[@]}" -gt 0 ] || [ "$update" -eq 1 ]; then
	quietly $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -q update
fi
if [ "${#missing[@]}" -gt 0 ]; then
	echo "Installing: ${missing[*]}"
	quietly $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -q install -y "${missing[@]}"
	# The tests run Prometheus themselves, on loopback; the package's own service (every
	# interface, port 9090), which apt starts on a systemd host, is not part of the mirror.
	if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
		$SUDO systemctl disable --now prometheus.service prometheus-node-exporter.service >/dev/null 2>&1 || true
	fi
	# The mirror runs HAProxy and Redis in containers of its own: the packaged services stay off.
	if [[ " ${missing[*]} " == *" redis-server "* || " ${missing[*]} " == *" haproxy "* ]] && [ -d /run/systemd/system ]; then
		$SUDO systemctl disable --now redis-server.service haproxy.service >/dev/null 2>&1 || true
	fi
fi

if [ ! -x "$ROOT/.venv/bin/python" ]; then
	echo "Creating $ROOT/.venv"
	quietly python3 -m venv "$ROOT/.venv"
fi
echo "Installing the project into .venv"
quietly "$ROOT/.venv/bin/pip" install --disable-pip-version-check -q -e "${ROOT}[${extras}]"

# Azurite from the npm registry, pinned (3.36 and later need Node 22; Debian 12 has 18,
# this machine 20), into .tools/ (git-ignored); nothing to do when that version is there.
AZURITE_VERSION=3.35.0
if ! grep -qs "\"version\": \"$AZURITE_VERSION\"" "$ROOT/.tools/node_modules/azurite/package.json"; then
	echo "Installing Azurite $AZURITE_VERSION into .tools"
	quietly npm install --prefix "$ROOT/.tools" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION"
fi

if [ "$start_engine" -eq 1 ]; then
	bash "$ROOT/scripts/start-docker-engine.sh"
fi

# The registry engine the mirror runs (make engine): distribution built from that source with
# patches/distribution/, once per machine (reused while the patches stay the same), and its
# image when the Docker engine runs. --apt: it installs the Go packages the source's
# Build-Depends name (and, on a host with python3 only now, adds the deb-src source first).
engine_args=(--apt)
[ "$start_engine" -eq 1 ] || engine_args+=(--no-image)
$SUDO "$ROOT/.venv/bin/python" -m mirror engine "${engine_args[@]}"
echo "Dependencies ready."
