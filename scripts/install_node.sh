#!/usr/bin/env bash
# Install Node.js and npm (Debian's) for `make venv`, which runs `npm ci --prefix web` to fetch the pinned
# onnxruntime-web files of the browser page (mraa export --format web, mraa web). Does nothing when npm is there.
set -euo pipefail
exec bash "$(dirname "$0")/apt_install.sh" npm "npm (Node.js 18+)" --no-install-recommends nodejs npm
