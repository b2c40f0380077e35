#!/usr/bin/env bash
# Install the Debian browser used by the web tests (tests/test_web*.py): chromium + chromedriver.
# Idempotent: does nothing when both are already installed. Needs root (or sudo) for apt-get.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  echo "install-web-deps: chromium and chromedriver already present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-web-deps: not root and no sudo; cannot install chromium (web tests will skip)" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core
/usr/bin/chromium --version || true
/usr/bin/chromedriver --version || true
