#!/usr/bin/env bash
# Set up a fresh machine for the tests and run them: Python package with its test extras
# (torch pinned to the local CPU build by constraints.txt), the Debian browser for the web
# tests when a web test script exists, then the whole pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e ".[test]" -c constraints.txt
if [ -x .ci/install-web-deps.sh ] || [ -f .ci/install-web-deps.sh ]; then
  bash .ci/install-web-deps.sh
fi
if [ -f tests/shims/install.sh ]; then
  bash tests/shims/install.sh
fi
export OMP_NUM_THREADS=1 EMOLENS_THREADS=1
python3 -m pytest "$@"
