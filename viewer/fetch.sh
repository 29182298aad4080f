#!/usr/bin/env bash
# Fetch the prebuilt OHIF viewer from the npm registry into viewer/dist, ready to be served
# by pacsflow at /viewer (pacsflow/web/viewer.py). Run by `make viewer`; safe to run again.
#
# The package is pinned by version and by its integrity hash, so a changed tarball under the
# same version stops the fetch. OHIF's build expects to be served at the site root; the
# rebase step below points it at /viewer/ instead. Parts pacsflow does not use are removed.
set -euo pipefail

VERSION=3.13.2
INTEGRITY=sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA==
PUBLIC_URL=/viewer/

here=$(cd "$(dirname "$0")" && pwd)
cache=$here/.cache
tarball=$cache/ohif-app-$VERSION.tgz
dist=$here/dist
staging=$here/.dist.partial

fail() {
    echo "viewer/fetch.sh: $*" >&2
    exit 1
}

command -v npm >/dev/null || fail "npm not found: install Node 20 or newer (see README)"

mkdir -p "$cache"
if [[ ! -f $tarball ]]; then
    (cd "$cache" && npm pack --silent "@ohif/app@$VERSION" >/dev/null)
fi
actual=sha512-$(node -e 'process.stdout.write(require("crypto").createHash("sha512")
    .update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$tarball")
if [[ $actual != "$INTEGRITY" ]]; then
    rm -f "$tarball"
    fail "@ohif/app@$VERSION has integrity $actual, expected $INTEGRITY; removed the download"
fi

rm -rf "$staging"
mkdir -p "$staging"
# --touch: the tarball dates every file 1985, which would defeat HTTP revalidation on upgrade.
tar -xzf "$tarball" -C "$staging" --touch --strip-components=2 package/dist

# rebase FROM TO FILE...: replace the root-relative FROM by TO in each FILE, which must hold it,
# so that a new OHIF build that moved things fails here instead of in the browser.
rebase() {
    local from=$1 to=$2 file
    shift 2
    for file in "$@"; do
        grep -qF -- "$from" "$file" || fail "'$from' not found in dist/$file"
        FROM=$from TO=$to perl -pi -e 's/\Q$ENV{FROM}\E/$ENV{TO}/g' "$file"
    done
}

cd "$staging"
# Trim what pacsflow does not use:
# - source maps;
# - ort/, onnxruntime for the AI segmentation tools, which fetch their models from
#   huggingface.co and which app-config.js leaves out;
# - OIDC sign-in (pacsflow's session is used instead);
# - the service worker, never registered (index.html's init-service-worker.js unregisters);
# - demo customizations, loaded only through ?customization=, which app-config.js leaves off;
# - polyfill scripts nothing loads, and the hosting files of Netlify and `serve`;
# - OHIF's app-config.js, replaced by pacsflow's.
find . -name '*.map' -delete
rm -rf ort customizations
rm -f oidc-client.min.js google.js silent-refresh.html sw.js es6-shim.min.js polyfill.min.js \
    _headers _redirects serve.json app-config.js
cp "$here/app-config.js" app-config.js

# Rebase from / to $PUBLIC_URL: page links, webpack's path for chunks and workers, the font in
# the stylesheet, icon paths in the manifests, and the microscopy viewer's script.
rebase '="/' "=\"$PUBLIC_URL" index.html
mapfile -t runtimes < <(grep -lF '__webpack_require__.p = "/"' -- *.js)
((${#runtimes[@]})) || fail "no webpack runtime found in dist/*.js"
rebase '__webpack_require__.p = "/"' "__webpack_require__.p = \"$PUBLIC_URL\"" "${runtimes[@]}"
rebase 'url(/' "url($PUBLIC_URL" app.bundle.css
rebase '"/assets/' "\"${PUBLIC_URL}assets/" \
    manifest.json assets/browserconfig.xml assets/manifest.webapp assets/yandex-browser-manifest.json
rebase "'/dicom-microscopy-viewer/" "'${PUBLIC_URL}dicom-microscopy-viewer/" app.bundle.*.js
cd "$here"

rm -rf "$dist"
mv "$staging" "$dist"
echo "viewer/fetch.sh: OHIF $VERSION in $dist ($(du -sh "$dist" | cut -f1))"
