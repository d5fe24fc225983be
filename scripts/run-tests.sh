#!/usr/bin/env bash
# Runs every check of the project: formatting, lints, the whole test suite (with the real
# nginx and HAProxy the deployment tests drive, and the real Postfix and Exim of the MTA tests,
# installed when missing) and the OpenShift
# manifest validation (kubernetes-validate from PyPI, installed under target/ when missing).
# Needs the Rust toolchain and python3; installs the rest.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-proxies.sh
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
NOTIFY_INBOUND_BIN=target/debug/notify-inbound scripts/validate-manifests.sh
echo "run-tests: all checks passed"
