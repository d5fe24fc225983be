#!/usr/bin/env bash
# Runs every check of the project: formatting, lints, the whole test suite (with the real
# nginx and HAProxy the deployment tests drive, installed when missing) and the OpenShift
# manifest validation (kubernetes-validate from PyPI, installed under target/ when missing),
# and the fuzz targets built and run once over their seeds (scripts/fuzz-seeds.sh).
# Needs the Rust toolchain and python3; installs the rest.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-proxies.sh
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
echo "run-tests: all checks passed"
