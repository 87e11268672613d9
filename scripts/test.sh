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
tests/agents/node_modules/.bin/codex --version
echo "gemini $(tests/agents/node_modules/.bin/gemini --version)"
# Real test runners whose reports the failure-source tests read: Jest and Vitest (npm), Go
# (Debian's golang-go), cargo-nextest (on the machine image; from crates.io if missing).
npm ci --prefix tests/fixtures/frameworks/js --no-audit --no-fund --loglevel=error
if ! command -v go >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null
fi
go version
# Headless Chromium and its WebDriver for the web page's browser tests (Debian's packages).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
chromium --version
# PostgreSQL for the team store's tests (Debian's package; its initdb and pg_ctl live in
# /usr/lib/postgresql/<version>/bin, off PATH). The tests start their own servers.
if ! command -v initdb >/dev/null && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
cargo nextest --version >/dev/null 2>&1 || cargo install cargo-nextest --locked
# node also runs the shipped n8n workflow's own code in the webhook teacher's tests.
node --version

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --locked
