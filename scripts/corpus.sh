#!/usr/bin/env bash
# The failure-source corpus: real open-source projects from the registries, each with a bug
# injected, run under each test framework. For every run it compares what
# `promptloop capture --json` extracted with the runner's own report (failing tests found vs the
# runner's count, ids and messages matched) and prints one line per framework.
#
# Not part of `cargo test` (it downloads packages and takes a few minutes):
#   scripts/corpus.sh [WORKDIR]        (default: a new temporary folder)
# Needs: python3 + pip, node + npm, go (Debian's golang-go), cargo and cargo-nextest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d -t promptloop-corpus-XXXXXX)}"
mkdir -p "$work"
cd "$root"
cargo build --quiet
pl="$root/target/debug/promptloop"
compare="$root/scripts/corpus_compare.py"
results="$work/results.jsonl"
: > "$results"
export PYTHONDONTWRITEBYTECODE=1 COLUMNS=1000 NO_COLOR=1 FORCE_COLOR=0 CARGO_TERM_COLOR=never

# run NAME FRAMEWORK DIR OWN_COMMAND CAPTURE_COMMAND: the runner's own output, then ours.
run() {
  local name=$1 framework=$2 dir=$3 own=$4 ours=$5
  echo "==> $name ($framework)" >&2
  (cd "$dir" && bash -c "$own" > "$work/$name.own.txt" 2>&1) || true
  (cd "$dir" && "$pl" capture --json --framework "$framework" -- "$ours" > "$work/$name.capture.json" 2> "$work/$name.capture.err") || true
  python3 "$compare" "$framework" "$work/$name.own.txt" "$work/$name.capture.json" \
    | python3 -c "import json,sys; d=json.load(sys.stdin); d['project']='$name'; print(json.dumps(d))" \
    | tee -a "$results"
}

# --- pytest and JUnit: more-itertools (PyPI sdist); `take` returns one item too many.
cd "$work"
python3 -m pip download --quiet --disable-pip-version-check --no-binary :all: --no-deps more-itertools==10.5.0 -d "$work"
rm -rf more-itertools-10.5.0 && tar xzf more-itertools-10.5.0.tar.gz
mi="$work/more-itertools-10.5.0"
sed -i 's/return list(islice(iterable, n))/return list(islice(iterable, n + 1))/' "$mi/more_itertools/recipes.py"
grep -q 'islice(iterable, n + 1)' "$mi/more_itertools/recipes.py"
run more-itertools pytest "$mi" \
  "python3 -m pytest tests -q -rfE -p no:cacheprovider --junitxml=$work/more-itertools.junit.xml" \
  "python3 -m pytest tests -q -p no:cacheprovider"
echo "==> more-itertools (junit: the report pytest wrote)" >&2
(cd "$mi" && "$pl" capture --json --junit "$work/more-itertools.junit.xml" > "$work/more-itertools-junit.capture.json") || true
python3 "$compare" junit "$work/more-itertools.own.txt" "$work/more-itertools-junit.capture.json" \
  | python3 -c "import json,sys; d=json.load(sys.stdin); d['project']='more-itertools'; print(json.dumps(d))" \
  | tee -a "$results"

# --- Jest and Vitest: object-path and json-schema-traverse (npm), whose mocha-style tests
# (describe/it with chai or assert) run unchanged under both runners.
node="$work/node"
mkdir -p "$node"
if [ ! -x "$node/node_modules/.bin/jest" ]; then
  (cd "$node" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error jest@29.7.0 vitest@3.2.4 chai@4.3.10 >/dev/null)
fi
cd "$work"
npm pack --silent object-path@0.11.8 json-schema-traverse@0.4.1 >/dev/null
for pkg in object-path-0.11.8 json-schema-traverse-0.4.1; do
  rm -rf "$pkg" && mkdir "$pkg" && tar xzf "$pkg.tgz" -C "$pkg" --strip-components=1
  ln -s "$node/node_modules" "$pkg/node_modules"
done
op="$work/object-path-0.11.8"
# Bug: own properties that are falsy are no longer found.
sed -i 's/      if (hasShallowProperty(obj, prop)) {/      if (hasShallowProperty(obj, prop) \&\& obj[prop]) {/' "$op/index.js"
grep -q '&& obj\[prop\]) {' "$op/index.js"
echo "module.exports = { testMatch: ['**/test.js'] };" > "$op/jest.config.js"
echo "export default { test: { include: ['test.js'], globals: true } };" > "$op/vitest.config.mjs"
jst="$work/json-schema-traverse-0.4.1"
# Bug: the schemas in `allOf` lists are no longer traversed.
sed -i '/^  allOf: true,$/d' "$jst/index.js"
! grep -q '^  allOf: true,$' "$jst/index.js"
echo "module.exports = { testMatch: ['**/spec/*.spec.js'] };" > "$jst/jest.config.js"
echo "export default { test: { include: ['spec/*.spec.js'], globals: true } };" > "$jst/vitest.config.mjs"
for dir in "$op" "$jst"; do
  name=$(basename "$dir")
  run "$name-jest" jest "$dir" "npx jest" "npx jest"
  run "$name-vitest" vitest "$dir" "npx vitest run" "npx vitest run"
done

# --- go test: github.com/pkg/errors (Debian's golang-github-pkg-errors-dev source); every
# error message gains a trailing dot.
src=/usr/share/gocode/src/github.com/pkg/errors
if [ ! -d "$src" ]; then
  apt-get install -y -qq golang-github-pkg-errors-dev >/dev/null
fi
ge="$work/pkg-errors"
rm -rf "$ge" && cp -r "$src" "$ge" && chmod -R u+w "$ge"
[ -f "$ge/go.mod" ] || printf 'module github.com/pkg/errors\n\ngo 1.19\n' > "$ge/go.mod"
sed -i 's/func (f \*fundamental) Error() string { return f.msg }/func (f *fundamental) Error() string { return f.msg + "." }/' "$ge/errors.go"
grep -q 'return f.msg + "."' "$ge/errors.go"
run pkg-errors go "$ge" "go test -v ./..." "go test ./..."

# --- cargo test and nextest: semver 1.0.23 (crates.io); Version::new swaps minor and patch.
fetch="$work/semver-fetch"
mkdir -p "$fetch/src"
printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nsemver = "=1.0.23"\n[workspace]\n' > "$fetch/Cargo.toml"
: > "$fetch/src/lib.rs"
(cd "$fetch" && cargo fetch --quiet)
crate_src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/semver-1.0.23 | head -1)
sv="$work/semver-1.0.23"
rm -rf "$sv" && cp -r "$crate_src" "$sv" && chmod -R u+w "$sv"
grep -q '^\[workspace\]' "$sv/Cargo.toml" || printf '\n[workspace]\n' >> "$sv/Cargo.toml"
python3 - "$sv/src/lib.rs" <<'EOF'
import sys
p = sys.argv[1]
s = open(p).read()
old = "        Version {\n            major,\n            minor,\n            patch,\n"
assert old in s, "semver: Version::new not found"
s = s.replace(old, "        Version {\n            major,\n            minor: patch,\n            patch: minor,\n", 1)
open(p, "w").write(s)
EOF
export CARGO_TARGET_DIR="$work/semver-target"
run semver-cargo cargo "$sv" "cargo test --offline --no-fail-fast" "cargo test --offline --no-fail-fast"
run semver-nextest nextest "$sv" "cargo nextest run --offline --no-fail-fast" "cargo nextest run --offline --no-fail-fast"

echo
echo "framework  project                      runner failed  found  ids matched  messages matched"
python3 - "$results" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    print(f"{d['framework']:<10} {d['project']:<28} {d['runner_failed']:>13}  {d['ours']:>5}  {d['ids_matched']:>5}/{d['runner_ids']:<5}  {d['messages_matched']:>5}/{d['ids_matched']}")
EOF
echo "details: $results"
