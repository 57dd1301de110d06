#!/usr/bin/env bash
# Install Node.js and npm (Debian's) for `make venv`, which runs `npm ci --prefix web` to fetch the pinned
# onnxruntime-web files of the browser page (mraa export --format web, mraa web). Does nothing when npm is there.
set -euo pipefail

if command -v npm >/dev/null 2>&1; then
    echo "npm already installed: $(npm --version) (node $(node --version 2>/dev/null || echo unknown))"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: apt-get not found; install Node.js 18+ and npm yourself" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "error: installing npm needs root (or sudo)" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends nodejs npm
echo "installed: npm $(npm --version)"
