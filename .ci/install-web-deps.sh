#!/usr/bin/env bash
# Install the Debian packages the browser and window tests need: chromium + chromedriver
# (tests/test_web*.py) and Xvfb, a virtual display for the `emolens webcam` window test.
# Idempotent: does nothing when all three are already installed. Needs root (or sudo) for apt-get.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && [ -x /usr/bin/Xvfb ]; then
  echo "install-web-deps: chromium, chromedriver and Xvfb already present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-web-deps: not root and no sudo; cannot install chromium/Xvfb (web and window tests will skip)" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core xvfb
/usr/bin/chromium --version || true
/usr/bin/chromedriver --version || true
