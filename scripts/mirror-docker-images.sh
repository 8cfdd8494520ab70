#!/usr/bin/env bash
# kdevops-compatible entry point:
#   mirror-docker-images.sh [LIST] [--scan] [--archive] [--path DIR] [--port N] [--name PREFIX]
# (options in any order). `--scan` alone prints the image references the
# workflows use; anything else warms the mirror (`make docker-mirror-pull`),
# adding the images of LIST and, with --scan, the scanned ones; --archive
# then saves each image to images/archives/.
# --path DIR, --port N and --name PREFIX (also --path=DIR...) name a mirror set
# up with `docker-mirror-setup.sh DIR PORT NAME`: they override
# DOCKER_MIRROR_PATH, DOCKER_MIRROR_PORT and DOCKER_MIRROR_CONTAINER_PREFIX for
# the warm (`python3 -m mirror pull --path DIR --port N --name PREFIX`); a bad
# value is named as the command line's (exit 2). What --scan alone prints does
# not depend on them.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
config=${KCONFIG_CONFIG:-.config}
case "$config" in /*) ;; *) config="$PWD/$config" ;; esac
usage="usage: $0 [LIST] [--scan] [--archive] [--path DIR] [--port N] [--name PREFIX]"
list=()
scan=0 other=0
args=()
overrides=()
while [ "$#" -gt 0 ]; do
	arg=$1
	shift
	case "$arg" in
	--scan) scan=1 ;;
	--archive | --prune | --no-wait) args+=("$arg"); other=1 ;;
	--path | --port | --name)
		if [ "$#" -eq 0 ]; then
			echo "$0: option '$arg' needs a value ($usage)" >&2
			exit 2
		fi
		overrides+=("$arg" "$1")
		shift
		;;
	--path=* | --port=* | --name=*) overrides+=("${arg%%=*}" "${arg#*=}") ;;
	-h | --help)
		echo "$usage"
		exit 0
		;;
	-*)
		echo "$0: unknown option '$arg' ($usage)" >&2
		exit 2
		;;
	*) list+=("$(realpath -m -- "$arg")"); other=1 ;;
	esac
done
if [ "${#list[@]}" -gt 1 ]; then
	echo "$0: one image list at most (got: ${list[*]})" >&2
	exit 2
fi
cd "$here/.."
PYTHON=python3
[ -x .venv/bin/python3 ] && PYTHON=.venv/bin/python3
if [ "$scan" -eq 1 ] && [ "$other" -eq 0 ]; then
	exec "$PYTHON" -m mirror --config "$config" scan
fi
[ "$scan" -eq 1 ] && args+=(--scan)
exec "$PYTHON" -m mirror --config "$config" pull "${list[@]}" "${args[@]}" "${overrides[@]}"
