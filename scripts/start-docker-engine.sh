#!/usr/bin/env bash
# Make sure a Docker engine answers on this host; start one if it does not.
# Idempotent, and safe without a tty (CI): a running engine is left alone.
set -euo pipefail

LOG=/var/log/dockerd.log
SOCK=/var/run/docker.sock
WAIT_SECONDS=${DOCKER_START_TIMEOUT:-30}
# dockerd lives in /usr/sbin, which a non-root PATH on Debian leaves out.
export PATH="$PATH:/usr/sbin:/sbin"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo -n"
fi

answers_as() {
	# The client may be missing or newer than the daemon; a raw _ping on the
	# socket is the fallback that needs neither to agree.
	if command -v docker >/dev/null 2>&1 && "$@" timeout 10 docker info >/dev/null 2>&1; then
		return 0
	fi
	[ -S "$SOCK" ] && command -v curl >/dev/null 2>&1 &&
		"$@" timeout 5 curl -sf --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1
}

# Also asked as root, so that an engine this user may merely not talk to is
# not mistaken for a missing one and started a second time.
engine_answers() {
	answers_as env && return 0
	[ -n "$SUDO" ] && command -v sudo >/dev/null 2>&1 && answers_as sudo -n
}

usable_by_me() {
	if ! answers_as env; then
		echo "The Docker engine runs, but $(id -un) cannot use $SOCK:" \
			"run 'sudo usermod -aG docker $(id -un)' and log in again." >&2
		return 1
	fi
}

if engine_answers; then
	usable_by_me
	exit 0
fi

if [ -n "$SUDO" ] && ! command -v sudo >/dev/null 2>&1; then
	if [ -S "$SOCK" ]; then
		echo "$(id -un) cannot use the Docker engine at $SOCK: add it to the docker" \
			"group, or run $0 as root." >&2
	else
		echo "The Docker engine is not running, and starting it needs root: run $0 as root." >&2
	fi
	exit 1
fi

if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
	$SUDO systemctl start docker
else
	if ! command -v dockerd >/dev/null 2>&1; then
		echo "dockerd not found: run scripts/install-deps.sh (apt-get install docker.io)" >&2
		exit 1
	fi
	# Without systemd nobody else will start it. iptables is off because
	# containers here and in CI need no NAT and the rules often cannot be set;
	# unless daemon.json says otherwise: dockerd refuses a setting given both
	# as a flag and in the file.
	flags="--iptables=false"
	if grep -qs '"iptables"' /etc/docker/daemon.json; then
		flags=""
	fi
	$SUDO sh -c "setsid nohup dockerd $flags >>'$LOG' 2>&1 </dev/null &"
fi

deadline=$((SECONDS + WAIT_SECONDS))
while [ "$SECONDS" -lt "$deadline" ]; do
	if engine_answers; then
		usable_by_me
		exit 0
	fi
	sleep 1
done

echo "Docker engine did not answer within ${WAIT_SECONDS}s." >&2
if [ -r "$LOG" ]; then
	echo "--- last lines of $LOG ---" >&2
	tail -n 30 "$LOG" >&2
elif command -v journalctl >/dev/null 2>&1; then
	$SUDO journalctl -u docker --no-pager -n 30 >&2 || true
fi
exit 1
