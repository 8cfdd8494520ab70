#!/usr/bin/env bash
# kdevops-compatible entry point: mirror-docker-images.sh [LIST] [--scan] [--archive]
# (options in any order). `--scan` alone prints the image references the
# workflows use; anything else warms the mirror (`make docker-mirror-pull`),
# adding the images of LIST and, with --scan, the scanned ones; --archive
# then saves each image to images/archives/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
config=${KCONFIG_CONFIG:-.config}
case "$config" in /*) ;; *) config="$PWD/$config" ;; esac
list=()
scan=0 other=0
args=()
for arg in "$@"; do
	case "$arg" in
	--scan) scan=1 ;;
	--archive | --prune | --no-wait) args+=("$arg"); other=1 ;;
	-h | --help)
		echo "usage: $0 [LIST] [--scan] [--archive]"
		exit 0
		;;
	-*)
		echo "$0: unknown option '$arg' (usage: $0 [LIST] [--scan] [--archive])" >&2
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
exec "$PYTHON" -m mirror --config "$config" pull "${list[@]}" "${args[@]}"
