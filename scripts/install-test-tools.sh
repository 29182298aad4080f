#!/usr/bin/env bash
# Installs the Debian packages that tests use as real peers, when they are missing.
# `make test` runs it; as root (as in CI) it installs, otherwise it says what to install.
set -euo pipefail

# command -> Debian package
declare -A tools=(
    [storescu]=dcmtk [echoscu]=dcmtk [dciodvfy]=dicom3tools
    [chromium]=chromium [docker-compose]=docker-compose
)

missing=()
for tool in "${!tools[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("${tools[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -ne 0 ]; then
    echo "the tests need: ${packages[*]}; install them with: sudo apt-get install ${packages[*]}" >&2
    exit 1
fi
echo "installing ${packages[*]} for the tests"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
