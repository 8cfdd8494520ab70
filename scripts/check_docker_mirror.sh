#!/bin/sh
# kdevops-compatible checks of the Docker mirror, answered by the mirror CLI:
#
#   check_docker_mirror.sh DOCKER_MIRROR_URL     print the mirror's URL (exit 1, no output, when it does not answer)
#   check_docker_mirror.sh DOCKER_MIRROR_EXISTS  print true or false
#   check_docker_mirror.sh DOCKER_MIRROR_DIR     print the mirror directory
#   check_docker_mirror.sh IMAGE_EXISTS IMAGE    exit 0 when IMAGE is in the mirror's cache (manifest
#                                                and layers), 1 when not, 3 when its s3/azure store
#                                                cannot be read or has no such bucket/container
#                                                (cannot tell)
#
# --path DIR, --port N and --name PREFIX may follow (every argument goes to
# `python3 -m mirror check-mirror`): they name a mirror set up with
# `docker-mirror-setup.sh DIR PORT NAME`, overriding DOCKER_MIRROR_PATH,
# DOCKER_MIRROR_PORT and DOCKER_MIRROR_CONTAINER_PREFIX, e.g.
#   check_docker_mirror.sh DOCKER_MIRROR_DIR --path /srv/mirror   prints /srv/mirror
#
# The .config read is $KCONFIG_CONFIG, else .config at the top of the tree.
set -eu

# The checks run from the top of the tree: keep a relative $KCONFIG_CONFIG
# pointing where the caller meant.
case "${KCONFIG_CONFIG:-}" in
"" | /*) ;;
*) KCONFIG_CONFIG="$PWD/$KCONFIG_CONFIG"; export KCONFIG_CONFIG ;;
esac
cd "$(dirname "$0")/.."
PYTHON=python3
if [ -x .venv/bin/python3 ]; then
	PYTHON=.venv/bin/python3
fi
exec "$PYTHON" -m mirror check-mirror "$@"
