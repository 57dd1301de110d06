#!/usr/bin/env bash
# Install Debian's Chromium for the web app's browser test (tests/test_app.py), driven by Playwright.
# Playwright's own browser download (`playwright install`) is never used: the test points Playwright at
# /usr/bin/chromium. Needs root (or sudo) and apt; does nothing when Chromium is already there.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "chromium already installed: $(chromium --version 2>/dev/null || echo unknown version)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: apt-get not found; install Chromium yourself and set MRAA_CHROMIUM=/path/to/chromium" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "error: installing chromium needs root (or sudo)" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q chromium  # recommends bring fonts for readable screenshots
echo "installed: $(chromium --version 2>/dev/null || echo chromium)"
