#!/usr/bin/env bash
# The order the experiments ran in, as two queues that can run side by side (one thread each):
#   MTST_BENCH_THREADS=1 nohup nice -n 19 bash benchmarks/quality/queue.sh a > benchmarks/quality/.cache/queue-a.log 2>&1 &
#   MTST_BENCH_THREADS=1 nohup nice -n 19 bash benchmarks/quality/queue.sh b > benchmarks/quality/.cache/queue-b.log 2>&1 &
#   MTST_BENCH_THREADS=1 nohup nice -n 19 bash benchmarks/quality/queue.sh c > benchmarks/quality/.cache/queue-c.log 2>&1 &
#   (then queue.sh d beside c, once the long run below has finished; then e beside d; f beside g; h and i after them)
#   MTST_BENCH_THREADS=1 nohup nice -n 19 .venv/bin/python -m benchmarks.quality run long > benchmarks/quality/.cache/long.log 2>&1 &
# Each line skips runs whose result JSON exists, so re-running this script resumes.
# With no argument everything runs one after the other (make bench-quality).
set -u
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
run() { $PY -m benchmarks.quality run "$@" || echo "run $* exited $?"; }
each() { local experiment=$1; shift; for v in "$@"; do run "$experiment" --only "$v" ${SEEDS:+--seeds $SEEDS}; done; }

queue_a() {  # freezing, joint vs separate, keeping the embeddings, layer-wise LR decay
  # (the frozen-feature baseline, results/features/, came first; its script is gone: docs/training-guide.md)
  each joint single-sentiment single-ner joint-sentiment-ner joint-sentiment-ner-preserve-lr2e-5-decay0.8 \
       joint-sentiment-ner-preserve-head-lr1e-2 single-sentiment-recipe single-ner-recipe
  each freezing frozen-encoder frozen-encoder-head-lr1e-2 sentiment-kept-then-ner frozen-embeddings frozen-bottom3 \
       gradual-unfreeze
  each joint joint-sentiment-ner-anchor1 joint-sentiment-ner-anchor1-preserve joint-sentiment-ner-anchor10-preserve
  each freezing sentiment-kept-then-ner-frozen-encoder sentiment-head-frozen-replay
  run llrd
  each joint single-topic joint-full joint-preserve-lr2e-5-decay0.8 joint-frozen-encoder joint-preserve-bottom3
  SEEDS="0 1 2" each llrd lr1e-4-flat lr1e-4-decay0.95 lr1e-4-decay0.8
  SEEDS="0 1 2" each joint joint-sentiment-ner single-sentiment single-ner joint-sentiment-ner-anchor1-preserve \
       joint-sentiment-ner-preserve-head-lr1e-2 single-sentiment-recipe single-ner-recipe
}

queue_b() {  # abundant sentiment, scarce NER (the sequential variants start from joint/single-sentiment)
  each joint single-sentiment
  each scarce ner5pct-alone ner5pct-proportional ner5pct-temperature2 ner5pct-round-robin \
       ner5pct-proportional-uncertainty ner5pct-sequential ner5pct-sequential-ner-only
  for pct in 1 25; do
    each scarce ner${pct}pct-alone ner${pct}pct-proportional ner${pct}pct-temperature2 ner${pct}pct-round-robin
  done
  run scarce
  SEEDS="0 1 2" each scarce ner5pct-alone ner5pct-proportional ner5pct-temperature2 ner5pct-round-robin \
       ner5pct-proportional-uncertainty
}

queue_c() {  # all three tasks jointly (300 steps), then the long run of all three with the anchor
  each joint joint-full joint-full-recipe single-topic-recipe joint-full-recipe-anchor10
  each long joint-all-8000steps-bf16-anchor10
}

queue_d() {  # 3 seeds of the three-task rows, more three-task variants, then 3 seeds of other close calls
  SEEDS="0 1 2" each joint joint-full-recipe single-topic-recipe joint-full-recipe-anchor10
  each joint joint-frozen-encoder joint-preserve-bottom3 joint-preserve-lr2e-5-decay0.8
  SEEDS="0 1 2" each scarce ner5pct-round-robin-uncertainty ner5pct-proportional-uncertainty
  SEEDS="0 1 2" each freezing frozen-embeddings frozen-bottom3 gradual-unfreeze frozen-encoder-head-lr1e-2
  SEEDS="0 1 2" each joint joint-sentiment-ner single-sentiment single-ner
}

queue_e() {  # beside d: closing the three-task sentiment gap
  SEEDS="0" each joint joint-full-recipe-sentiment-weight2 joint-full-recipe-uncertainty
  SEEDS="0 1 2" each joint joint-full-recipe-sentiment-weight2 joint-full-recipe-uncertainty
}

queue_f() {  # more sentiment updates in the three-task mix; then the NER learning-rate sweep at the long budget
  SEEDS="0 1 2" each joint joint-full-recipe-sentiment-sampled2
  each long single-ner-2080steps-bf16 single-ner-2080steps-bf16-lr1e-4 single-ner-2080steps-bf16-lr2e-4
  each long single-ner-2080steps-bf16-lr2e-5  # stopped at step 520 in the session that added it, for 2e-4
}

queue_g() {  # beside f: sentiment alone at the long budget and its learning-rate sweep
  each long single-sentiment-4550steps-bf16 single-sentiment-4550steps-bf16-lr1e-4 single-sentiment-4550steps-bf16-lr2e-4
  each long single-sentiment-4550steps-bf16-lr2e-5  # not reached in the session that added it (1e-4 beat 5e-5: went up)
}

queue_h() {  # after f: sentiment sampled 1:2:1 over 400 steps; 3 seeds of anchor 1 and of the kept-head freezing rows
  SEEDS="0 1 2" each joint joint-full-recipe-sentiment-sampled2-400steps
  SEEDS="0 1 2" each joint joint-sentiment-ner-anchor1-preserve
  SEEDS="0 1 2" each freezing sentiment-kept-then-ner sentiment-kept-then-ner-frozen-encoder sentiment-head-frozen-replay
}

queue_i() {  # after g: topic alone at the long budget, NER at 4e-4 (2e-4 beat 1e-4), 3 seeds of 1 % / 25 % scarce
  each long single-topic-1370steps-bf16 single-ner-2080steps-bf16-lr4e-4
  SEEDS="0 1 2" each scarce ner1pct-alone ner1pct-round-robin ner25pct-alone ner25pct-round-robin
}

case "${1:-all}" in
  a) queue_a ;;
  b) queue_b ;;
  c) queue_c ;;
  d) queue_d ;;
  e) queue_e ;;
  f) queue_f ;;
  g) queue_g ;;
  h) queue_h ;;
  i) queue_i ;;
  *) queue_a; queue_b; queue_c; queue_d; queue_e; queue_f; queue_g; queue_h; queue_i; run long ;;
esac
