#!/usr/bin/env bash
# CI, after `make test`: mtst with its core dependencies only (no extras), in a fresh venv, from the locked versions.
# `mtst encode` and `mtst predict` must work on the shipped model, and a command that needs an extra must say which
# one in one line. Prints the install's size and package count (README.md, "Install").
#   .ci/core_smoke.sh [VENV_DIR]      (default: build/core-venv; replaced)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
VENV=${1:-build/core-venv}
LOCK=$REPO/requirements/lock.txt

rm -rf "$VENV"
python3 -m venv "$VENV"
VENV=$(cd "$VENV" && pwd)
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -c "$LOCK" torch==2.13.0  # first, as in the Makefile: the CPU wheel
"$VENV/bin/python" -m pip install --quiet -c "$LOCK" "$REPO"
MTST=$VENV/bin/mtst
cd "$(mktemp -d)"  # away from the checkout: only the installed package can answer

fail() { echo "core smoke: $*" >&2; exit 1; }

"$MTST" --version | grep -qx "mtst [0-9.]*" || fail "mtst --version"

"$MTST" encode -f jsonl "hello" > encode.jsonl
"$VENV/bin/python" - <<'PY' || fail "mtst encode: expected one 384-dimensional embedding"
import json
rows = [json.loads(line) for line in open("encode.jsonl")]
assert len(rows) == 1 and rows[0]["text"] == "hello" and len(rows[0]["embedding"]) == 384, rows
PY

"$MTST" predict "Angela Merkel met Emmanuel Macron in Paris." > predict.jsonl
"$VENV/bin/python" - <<'PY' || fail "mtst predict: expected the shipped model's entities"
import json
(row,) = [json.loads(line) for line in open("predict.jsonl")]
entities = {(e["text"], e["label"]) for e in row["ner"]}
assert {("Angela Merkel", "PER"), ("Emmanuel Macron", "PER"), ("Paris", "LOC")} <= entities, row
assert row["topic"]["label"] and row["sentiment"]["label"], row
PY

"$VENV/bin/python" -c "import mtst; mtst.MultiTaskModel.load(None).encode(['hello'])" || fail "import mtst; encode"

# A command that needs an extra: exit code 1 and exactly one line naming the extra.
expect_extra() {
    local extra=$1; shift
    local status=0
    "$MTST" "$@" > out.txt 2> err.txt || status=$?
    [ "$status" -eq 1 ] || fail "mtst $*: exit code $status, expected 1"
    [ "$(wc -l < err.txt)" -eq 1 ] || fail "mtst $*: expected one line on stderr, got: $(cat err.txt)"
    grep -q "needs the '$extra' extra: pip install 'mtst\[$extra\]'" err.txt || fail "mtst $*: $(cat err.txt)"
}
expect_extra train train x.yaml
expect_extra serve serve
expect_extra export export -o exported

echo "core smoke: ok ($(du -sh "$VENV" | cut -f1), $("$VENV/bin/python" -m pip list --format=freeze | wc -l) packages)"
