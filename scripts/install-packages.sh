#!/usr/bin/env bash
# install-packages.sh — installs the Debian packages in scripts/packages.txt
# (as root, without prompts). Without root it only checks and says what is missing.
set -euo pipefail
cd "$(dirname "$0")"
mapfile -t packages < <(grep -v '^\s*#' packages.txt | grep -v '^\s*$')
if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    # tshark asks whether non-root users may capture: answer no, without a prompt.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update
    apt-get install -y --no-install-recommends "${packages[@]}"
else
    missing=()
    for p in "${packages[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "install-packages: not root; missing packages: ${missing[*]}" >&2
        echo "install-packages: run as root (or: sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi
