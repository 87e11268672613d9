#!/usr/bin/env bash
# Installs promptloop (cargo install) and runs the learning loop on a fresh copy of the
# example project (examples/calculator), with the Claude Code you have installed and logged in.
#
#   PROMPTLOOP_TEACHER=anthropic|offline|auto   which teacher to use (default: auto)
#   PROMPTLOOP_DEMO_DIR=DIR                     where to put the copy (default: a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> installing promptloop"
cargo install --path . --locked --quiet --force
bin="$(command -v promptloop || echo "$HOME/.cargo/bin/promptloop")"

if ! command -v claude >/dev/null 2>&1; then
  echo "Claude Code is not on PATH: install it with 'npm install -g @anthropic-ai/claude-code' and log in (claude)." >&2
  exit 2
fi
python3 -m pytest --version >/dev/null 2>&1 || python3 -m pip install --quiet pytest

dir="${PROMPTLOOP_DEMO_DIR:-$(mktemp -d -t promptloop-demo-XXXXXX)}"
mkdir -p "$dir"
cp -R examples/calculator/. "$dir/"
(
  cd "$dir"
  git init -q -b main
  git add -A
  git -c user.name=promptloop-demo -c user.email=demo@promptloop.invalid commit -qm "calculator with two bugs"
)
# acceptEdits works for root and non-root users alike; the agent may run the tests itself.
cat > "$dir/promptloop.yaml" <<'YAML'
claude:
  permission_mode: acceptEdits
  allowed_tools: ["Bash(python3 -m pytest:*)", "Bash(pytest:*)"]
  max_turns: 15
tests:
  command: python3 -m pytest tests -q
YAML
echo "==> running the loop in $dir"
cd "$dir"
set +e
"$bin" run "Fix the calculator so that all its tests pass" --teacher "${PROMPTLOOP_TEACHER:-auto}"
code=$?
set -e
echo
echo "The example is in $dir: CLAUDE.md holds what was learned, .promptloop/ the record."
exit $code
