#!/usr/bin/env bash
# Runs promptloop's whole test suite on a fresh machine: installs what the tests need
# (pytest from PyPI, the agent CLIs from npm into tests/agents), then format, lint and tests.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> installing test tools"
python3 -m pip install --quiet --disable-pip-version-check 'pytest>=8' 2>&1 | grep -v "Running pip as the 'root' user" || true
python3 -m pytest --version
# The real agent CLIs the end-to-end tests drive against loopback model servers.
npm ci --prefix tests/agents --no-audit --no-fund --loglevel=error
tests/agents/node_modules/.bin/claude --version
# node also runs the shipped n8n workflow's own code in the webhook teacher's tests.
node --version

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --locked
