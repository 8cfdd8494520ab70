#!/usr/bin/env bash
# kdevops-compatible entry point: docker-mirror-setup.sh [DIR] [PORT] [NAME]
# Sets up the mirror from .config; DIR, PORT and NAME override the mirror
# directory, the Docker Hub mirror port and the container name prefix.
set -eu
cd "$(dirname "$0")/.."
PYTHON=python3
[ -x .venv/bin/python3 ] && PYTHON=.venv/bin/python3
args=()
[ $# -ge 1 ] && [ -n "$1" ] && args+=(--path "$1")
[ $# -ge 2 ] && [ -n "$2" ] && args+=(--port "$2")
[ $# -ge 3 ] && [ -n "$3" ] && args+=(--name "$3")
exec "$PYTHON" -m mirror docker-mirror "${args[@]}"
