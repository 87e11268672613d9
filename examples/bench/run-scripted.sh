#!/bin/sh
# Runs the example suite with the scripted stand-in agent (scripted-agent/agent.sh), no
# model needed: the rules in example-rules.md against no rules. Extra arguments go to
# `promptloop bench` (e.g. --trials 3 --jobs 2 --json).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
config=$(mktemp)
trap 'rm -f "$config"' EXIT
cat > "$config" <<YAML
agent:
  kind: command
  command: sh '$here/scripted-agent/agent.sh'
  timeout: 120
learning:
  max_retries: 0
teacher:
  mode: offline
YAML
promptloop bench "$here/suite.yaml" --arms "$here/example-rules.md,none" --config "$config" "$@"
