#!/usr/bin/env python3
"""Compares what `promptloop capture --json` extracted with the runner's own report.

usage: corpus_compare.py FRAMEWORK RUNNER_OUTPUT CAPTURE_JSON

The runner's own report is read from its plain human output with simple, independent
patterns (pytest's `FAILED id - message` lines, Jest's `●` headers, Vitest's `FAIL` lines,
`go test -v`'s `--- FAIL:` lines, libtest's `test x ... FAILED` lines, nextest's `FAIL [`
lines) and its own summary count. Prints one JSON line with the figures.
"""

import json
import re
import sys


def norm(s):
    return " ".join((s or "").split())


def first(s):
    for line in (s or "").splitlines():
        if line.strip():
            # Node's JSON reports spell `AssertionError [ERR_ASSERTION]: …` where the human
            # output says `AssertionError: …`: the same message, with its error code.
            return norm(re.sub(r"^(\w+) \[[A-Z_]+\]:", r"\1:", line))
    return ""


def own_pytest(text):
    fails = {}
    for line in text.splitlines():
        m = re.match(r"^(FAILED|ERROR) (\S+?)(?: - (.*))?$", line)
        if m:
            fails[m.group(2)] = m.group(3) or ""
    count = 0
    for m in re.finditer(r"(\d+) (failed|error)", text.splitlines()[-1] if text else ""):
        count += int(m.group(1))
    return fails, count


def own_jest(text):
    fails, current, want = {}, None, False
    for line in text.splitlines():
        m = re.match(r"^  ● (.+)$", line)
        if m and m.group(1) != "Test suite failed to run":
            current = m.group(1).strip()
            fails[current] = ""
            want = True
            continue
        if want and line.strip():
            fails[current] = line.strip()
            want = False
    m = re.search(r"Tests:\s+(\d+) failed", text)
    return fails, int(m.group(1)) if m else 0


def own_vitest(text):
    fails, current, want = {}, None, False
    for line in text.splitlines():
        m = re.match(r"^ FAIL  (.+)$", line)
        if m and " > " in m.group(1):
            current = m.group(1).strip()
            fails[current] = ""
            want = True
            continue
        if want and line.strip():
            fails[current] = line.strip()
            want = False
    m = re.search(r"Tests\s+(\d+) failed", text)
    return fails, int(m.group(1)) if m else 0


def own_go(text):
    failed, messages, current = [], {}, None
    for line in text.splitlines():
        m = re.match(r"^=== (RUN|CONT)\s+(\S+)", line)
        if m:
            current = m.group(2)
            continue
        m = re.match(r"^\s*--- FAIL: (\S+)", line)
        if m:
            failed.append(m.group(1))
            continue
        m = re.match(r"^\s+\S+\.go:\d+: (.*)$", line)
        if m and current and current not in messages:
            messages[current] = m.group(1)
        m = re.match(r"^panic: (.*?)( \[recovered\])?$", line)
        if m and current and current not in messages:
            messages[current] = "panic: " + m.group(1)
    leaves = [t for t in failed if not any(o.startswith(t + "/") for o in failed)]
    return {t: messages.get(t, "") for t in leaves}, len(leaves)


def own_cargo(text):
    fails, count = {}, 0
    for line in text.splitlines():
        m = re.match(r"^test (.+) \.\.\. FAILED$", line)
        if m:
            fails[m.group(1)] = ""
        m = re.match(r"^test result: \w+\. \d+ passed; (\d+) failed", line)
        if m:
            count += int(m.group(1))
    blocks = re.split(r"^---- (.+) stdout ----$", text, flags=re.M)
    for name, body in zip(blocks[1::2], blocks[2::2]):
        m = re.search(r"panicked at [^\n]*\n([^\n]+)", body)
        if name in fails and m:
            fails[name] = m.group(1)
    return fails, count


def own_nextest(text):
    fails, count = {}, 0
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("Summary ["):
            m = re.search(r"(\d+) failed", line)
            count = int(m.group(1)) if m else 0
            break
        m = re.match(r"^\s+FAIL \[\s*[\d.]+s\] (?:\(\s*\d+/\d+\) )?(\S+) (\S+)$", line)
        if m:
            name = m.group(1) + " " + m.group(2)
            fails[name] = ""
            for follow in lines[i + 1 : i + 80]:
                if re.match(r"^\s+(FAIL|PASS) \[", follow):
                    break
                if "panicked at" in follow:
                    j = lines.index(follow, i)
                    fails[name] = lines[j + 1].strip()
                    break
    return fails, count


OWN = {
    "pytest": own_pytest,
    "junit": own_pytest,
    "jest": own_jest,
    "vitest": own_vitest,
    "go": own_go,
    "cargo": own_cargo,
    "nextest": own_nextest,
}


def our_key(framework, test_id):
    """Our id in the runner's own spelling."""
    if framework == "jest":
        return test_id.split(" › ", 1)[1] if " › " in test_id else test_id
    if framework == "go":
        return test_id.split("::", 1)[1] if "::" in test_id else test_id
    return test_id


def message_matches(ours, own):
    a, b = first(ours), first(own)
    if not b:
        return bool(a)
    return a == b or (a and (a in b or b in a))


def main():
    framework, runner_output, capture_json = sys.argv[1:4]
    with open(runner_output, encoding="utf-8", errors="replace") as f:
        text = re.sub(r"\x1b\[[0-9;]*m", "", f.read())
    with open(capture_json, encoding="utf-8") as f:
        capture = json.loads(f.readline())
    own, own_count = OWN[framework](text)
    ours = {our_key(framework, f["id"]): f["message"] for f in capture["failures"]}
    matched = [k for k in own if k in ours]
    messages = [k for k in matched if message_matches(ours[k], own[k])]
    print(
        json.dumps(
            {
                "framework": framework,
                "runner_failed": own_count,
                "runner_ids": len(own),
                "ours": len(ours),
                "ids_matched": len(matched),
                "messages_matched": len(messages),
                "missing": sorted(set(own) - set(ours))[:5],
                "extra": sorted(set(ours) - set(own))[:5],
                "message_mismatches": [
                    {"id": k, "ours": first(ours[k]), "runner": first(own[k])}
                    for k in matched
                    if k not in messages
                ][:3],
            }
        )
    )


if __name__ == "__main__":
    main()
