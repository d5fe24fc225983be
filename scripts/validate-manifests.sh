#!/usr/bin/env bash
# Validates the OpenShift Template and the Helm chart: Kubernetes schemas for every core-kind
# object (with kubernetes-validate from PyPI) and the structure no schema covers (Route, Template
# parameters, Deployment security context, config.local.toml, chart values). Exits non-zero on
# any failure. helm comes from scripts/ensure-helm.sh (or HELM=/path/to/helm).
#
# kubernetes-validate is installed into a virtual environment under target/ when missing
# (override the location with MANIFEST_VENV).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${MANIFEST_VENV:-$root/target/manifest-venv}
python=${PYTHON:-python3}

if ! command -v "$python" >/dev/null 2>&1; then
    echo "validate-manifests: $python not found; install Python 3.11+ (apt-get install -y python3 python3-venv)" >&2
    exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "validate-manifests: Python 3.11+ needed (tomllib); found $("$python" --version 2>&1)" >&2
    exit 1
fi

if ! "$venv/bin/python" -c 'import kubernetes_validate, yaml' >/dev/null 2>&1; then
    echo "validate-manifests: installing kubernetes-validate into $venv" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv" || {
        echo "validate-manifests: cannot create a virtual environment (apt-get install -y python3-venv)" >&2
        exit 1
    }
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'kubernetes-validate>=1.31,<2' PyYAML || {
        echo "validate-manifests: pip install kubernetes-validate failed" >&2
        exit 1
    }
fi

HELM=$("$root/scripts/ensure-helm.sh") || {
    echo "validate-manifests: no helm (scripts/ensure-helm.sh failed)" >&2
    exit 1
}
export HELM
exec "$venv/bin/python" "$root/scripts/validate_manifests.py"
