#!/usr/bin/env bash
# Follows the migration guide of docs/deployment.md ("Beside NotifyBC's Helm release") with
# `helm template`: NotifyBC's chart with the guide's values beside helm/notify-inbound
# (scripts/check_migration_guide.py says what is checked). Exits non-zero on any failure.
#
# Needs NotifyBC's chart directory with its charts/ dependencies:
#   NOTIFYBC_CHART=/path/to/NotifyBC/helm scripts/check-migration-guide.sh
# Without NOTIFYBC_CHART it uses a copy of the chart with its dependencies in
# ../shared/reference/notifybc-helm beside the repository when there is one (as in the project's
# CI workspace); else it fetches bcgov/NotifyBC at the commit below into target/ and runs
# `helm dependency build` (network needed), and fails saying so when it cannot.
# NOTIFY_INBOUND_BIN (default target/debug/notify-inbound) runs check-config.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${MANIFEST_VENV:-$root/target/manifest-venv}
# NotifyBC 6.4 (chart notify-bc 6.4.1), the chart the guide is written against.
notifybc_commit=24343c02cff5eb37cc32afcc78b75a0b556dc9b6

fail() {
    echo "check-migration-guide: $*" >&2
    exit 1
}

HELM=$("$root/scripts/ensure-helm.sh") || fail "no helm (scripts/ensure-helm.sh failed)"
export HELM

beside=$(cd "$root/.." && pwd)/shared/reference/notifybc-helm
if [ -z "${NOTIFYBC_CHART:-}" ] && [ -f "$beside/Chart.yaml" ] && [ -d "$beside/charts" ]; then
    NOTIFYBC_CHART=$beside
fi
if [ -z "${NOTIFYBC_CHART:-}" ]; then
    NOTIFYBC_CHART=$root/target/notifybc-$notifybc_commit/helm
    if [ ! -f "$NOTIFYBC_CHART/Chart.yaml" ] || [ ! -d "$NOTIFYBC_CHART/charts" ]; then
        echo "check-migration-guide: fetching NotifyBC's chart at $notifybc_commit" >&2
        command -v curl >/dev/null 2>&1 || fail "curl not found (apt-get install -y curl)"
        rm -rf "$root/target/notifybc-$notifybc_commit"
        mkdir -p "$root/target/notifybc-$notifybc_commit"
        curl -fsSL "https://codeload.github.com/bcgov/NotifyBC/tar.gz/$notifybc_commit" \
            | tar -xz -C "$root/target/notifybc-$notifybc_commit" --strip-components=1 \
                "NotifyBC-$notifybc_commit/helm" \
            || fail "cannot download bcgov/NotifyBC at $notifybc_commit; set NOTIFYBC_CHART=/path/to/NotifyBC/helm (with its charts/ dependencies)"
        "$HELM" dependency build "$NOTIFYBC_CHART" >&2 \
            || fail "helm dependency build $NOTIFYBC_CHART failed (Bitnami's chart repository unreachable?); set NOTIFYBC_CHART=/path/to/NotifyBC/helm with its charts/"
    fi
fi
[ -f "$NOTIFYBC_CHART/Chart.yaml" ] || fail "NOTIFYBC_CHART=$NOTIFYBC_CHART has no Chart.yaml"
export NOTIFYBC_CHART

export NOTIFY_INBOUND_BIN=${NOTIFY_INBOUND_BIN:-$root/target/debug/notify-inbound}
[ -x "$NOTIFY_INBOUND_BIN" ] || fail "$NOTIFY_INBOUND_BIN not found (cargo build --locked --bin notify-inbound)"

if ! "$venv/bin/python" -c 'import yaml' >/dev/null 2>&1; then
    python3 -m venv "$venv" || fail "cannot create a virtual environment (apt-get install -y python3-venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check PyYAML \
        || fail "pip install PyYAML failed"
fi

exec "$venv/bin/python" "$root/scripts/check_migration_guide.py"
