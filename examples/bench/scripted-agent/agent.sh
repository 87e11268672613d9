#!/bin/sh
# A stand-in for a coding agent, to run the example suite without a model (CI does): it
# reads its instruction file (AGENTS.md, or $RULES_FILE) and, when a rule there names what
# the task needs, applies the fix that rule describes; otherwise the naive fix, which
# passes the visible tests only. `promptloop bench` tells it the task's id in
# $PROMPTLOOP_BENCH_TASK; nothing tells it the arm: only the instruction file differs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
task=${PROMPTLOOP_BENCH_TASK:?this agent is run by promptloop bench}
solution="$here/solutions/$task"
rules=${RULES_FILE:-AGENTS.md}
if [ -f "$rules" ] && grep -qiF "$(cat "$solution/hint")" "$rules"; then
  cp -R "$solution/informed/." .
  echo "Applied the fix the instruction file's rule describes."
else
  cp -R "$solution/naive/." .
  echo "Fixed what the visible tests check."
fi
