#!/usr/bin/env bash
# The order this session ran the experiments in (most informative first), one run at a time.
# Each line skips runs whose result JSON exists, so re-running this script resumes.
#   nohup bash benchmarks/quality/queue.sh > benchmarks/quality/.cache/queue.log 2>&1 &
set -u
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
R=benchmarks/quality/run.py
run() { $PY $R "$@" || echo "run.py $* exited $?"; }
run features
for v in single-sentiment single-ner joint-sentiment-ner joint-sentiment-ner-preserve-lr2e-5-decay0.8; do
  run joint --only "$v"
done
for v in frozen-encoder frozen-encoder-head-lr1e-2 sentiment-kept-then-ner; do run freezing --only "$v"; done
run joint --only joint-sentiment-ner-preserve-head-lr1e-2
for v in single-sentiment-recipe single-ner-recipe; do run joint --only "$v"; done
for v in lr1e-4-flat lr1e-4-decay0.8; do run llrd --only "$v"; done
for v in ner5pct-round-robin ner5pct-proportional ner5pct-alone ner5pct-temperature2; do run scarce --only "$v"; done
$PY benchmarks/quality/footprint.py || echo "footprint failed"
for v in single-topic joint-full joint-preserve-lr2e-5-decay0.8 joint-frozen-encoder; do run joint --only "$v"; done
for v in frozen-bottom3 gradual-unfreeze sentiment-kept-then-ner-frozen-encoder; do run freezing --only "$v"; done
run llrd --only lr1e-4-decay0.95
for v in ner5pct-proportional-uncertainty ner5pct-sequential ner5pct-sequential-ner-only; do run scarce --only "$v"; done
run joint
run freezing
run llrd --seeds 0 1 2
run scarce
