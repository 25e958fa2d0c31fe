#!/usr/bin/env bash
# The order the experiments ran in, as two queues that can run side by side (one thread each):
#   MTST_BENCH_THREADS=1 nohup nice -n 19 bash benchmarks/quality/queue.sh a > benchmarks/quality/.cache/queue-a.log 2>&1 &
#   MTST_BENCH_THREADS=1 nohup nice -n 19 bash benchmarks/quality/queue.sh b > benchmarks/quality/.cache/queue-b.log 2>&1 &
# Each line skips runs whose result JSON exists, so re-running this script resumes.
# With no argument both queues run one after the other.
set -u
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
R=benchmarks/quality/run.py
run() { $PY $R "$@" || echo "run.py $* exited $?"; }

queue_a() {  # freezing, joint vs separate, layer-wise LR decay
  run features
  for v in single-sentiment single-ner joint-sentiment-ner joint-sentiment-ner-preserve-lr2e-5-decay0.8 \
           joint-sentiment-ner-preserve-head-lr1e-2 single-sentiment-recipe single-ner-recipe; do
    run joint --only "$v"
  done
  run freezing
  run llrd --seeds 0 1 2
  for v in joint-sentiment-ner single-sentiment; do run joint --only "$v" --seeds 0 1 2; done
  for v in single-topic joint-full joint-frozen-encoder joint-preserve-lr2e-5-decay0.8 joint-preserve-bottom3; do
    run joint --only "$v"
  done
  for v in joint-sentiment-ner-preserve-head-lr1e-2 single-sentiment-recipe single-ner-recipe; do
    run joint --only "$v" --seeds 0 1 2
  done
  $PY benchmarks/quality/footprint.py || echo "footprint failed"
}

queue_b() {  # abundant sentiment, scarce NER (the sequential variants start from joint/single-sentiment)
  run joint --only single-sentiment
  run scarce
  for v in ner5pct-proportional ner5pct-temperature2 ner5pct-round-robin ner5pct-alone \
           ner5pct-proportional-uncertainty; do
    run scarce --only "$v" --seeds 0 1 2
  done
}

case "${1:-all}" in
  a) queue_a ;;
  b) queue_b ;;
  *) queue_a; queue_b ;;
esac
