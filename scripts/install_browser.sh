#!/usr/bin/env bash
# Debian's headless Chromium for the frontend test (installed once; needs root or sudo).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "[browser-deps] installing Debian chromium for the frontend test" >&2
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >&2
