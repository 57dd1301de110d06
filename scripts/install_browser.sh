#!/usr/bin/env bash
# Install Debian's Chromium for the web app's and the browser page's tests (tests/test_app.py, tests/test_web.py).
# Playwright's own browser download (`playwright install`) is never used: the tests point at /usr/bin/chromium
# (elsewhere: install Chromium yourself and set MRAA_CHROMIUM=/path/to/chromium). Needs root (or sudo) and apt;
# does nothing when Chromium is already there.
set -euo pipefail
# recommends bring fonts for readable screenshots
exec bash "$(dirname "$0")/apt_install.sh" chromium chromium chromium
