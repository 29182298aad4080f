#!/usr/bin/env bash
# Installs the Debian packages that tests use as real peers, when they are missing.
# `make test` runs it; as root (as in CI) it installs, otherwise it says what to install.
set -euo pipefail

# The OpenID provider of tests/identity, pinned by its package-lock.json (needs Node, see README).
oidc="$(dirname "$0")/../tests/identity/oidc"
if [ ! "$oidc/node_modules/.package-lock.json" -nt "$oidc/package-lock.json" ]; then
    npm ci --prefix "$oidc" --no-audit --no-fund --loglevel=error
fi

# command -> Debian package
declare -A tools=(
    [storescu]=dcmtk [echoscu]=dcmtk [dciodvfy]=dicom3tools
    [chromium]=chromium [docker-compose]=docker-compose
)

# file -> Debian package: slapd lives in /usr/sbin, off a user's PATH; the headers are what
# python-ldap (the `ldap` extra, synced after this script) builds against.
declare -A files=(
    [/usr/sbin/slapd]=slapd
    [/usr/include/ldap.h]=libldap-dev [/usr/include/sasl/sasl.h]=libsasl2-dev
)

missing=()
for tool in "${!tools[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("${tools[$tool]}")
done
for file in "${!files[@]}"; do
    [ -e "$file" ] || missing+=("${files[$file]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -ne 0 ]; then
    echo "the tests need: ${packages[*]}; install them with: sudo apt-get install ${packages[*]}" >&2
    exit 1
fi
echo "installing ${packages[*]} for the tests"
apt-get update -qq
# The tests run slapd from their own configuration: no system directory, no service.
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
