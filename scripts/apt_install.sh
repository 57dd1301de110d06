#!/usr/bin/env bash
# Shared by install_browser.sh and install_node.sh: install Debian packages with apt-get (as root or via sudo)
# unless COMMAND is already on the PATH.
# Usage: apt_install.sh COMMAND NAME [apt-get install options and packages...]
set -euo pipefail

command_name=$1
name=$2
shift 2
if command -v "$command_name" >/dev/null 2>&1; then
    echo "$name already installed: $("$command_name" --version 2>/dev/null | head -n 1 || echo unknown version)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: apt-get not found; install $name yourself" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "error: installing $name needs root (or sudo)" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q "$@"
echo "installed: $name $("$command_name" --version 2>/dev/null | head -n 1 || true)"
