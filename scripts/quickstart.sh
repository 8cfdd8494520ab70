#!/usr/bin/env bash
# The README's first command: install everything, make the default .config
# (unless there is one), and bring the mirror up. Safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-deps.sh
[ -f .config ] || make -s defconfig
make -s docker-mirror
echo
make -s docker-mirror-status || true
