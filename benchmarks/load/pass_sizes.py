"""CPU time per sentence of one gathered server batch, cut into forward passes in different ways.

    .venv/bin/python benchmarks/load/pass_sizes.py --model EXPORT_DIR [--groups 16 64 256] [--overheads 32 64 128]

What ``mtst serve`` does with a gathered batch: the sentences arrive in request order (mixed lengths).
"one-pass" runs them as passes of min(group, 64) in that mix, as the server did before ``pass_size``;
"ohN" sorts them by length and uses ``pass_size(lengths, 64, overhead_tokens=N)``. Groups are consecutive
unique STS-B test sentences; every method runs on every group, alternating, twice, so machine load hits
them alike. CPU time rather than wall time: it stays comparable on a shared machine.
"""

from __future__ import annotations

import argparse
import collections
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported, as in `mtst serve`

from run import STSB_TEST, cpu_seconds, stsb_sentences  # noqa: E402  (same folder)


def main() -> None:
    from mtst.inference.backends import load_predictor
    from mtst.inference.batching import pass_size
    from mtst.serving.app import _token_counts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a saved model or `mtst export` directory")
    parser.add_argument("--groups", type=int, nargs="+", default=[16, 64, 256], help="gathered batch sizes")
    parser.add_argument("--overheads", type=int, nargs="+", default=[32, 64, 128], help="overhead_tokens values")
    args = parser.parse_args()
    predictor = load_predictor(args.model)
    sentences = stsb_sentences(STSB_TEST)
    predictor.encode(sentences[:64])  # warm-up
    print("| gathered sentences | load avg | " + " | ".join(["one-pass", *(f"oh{n}" for n in args.overheads)])
          + " |  (CPU ms per sentence)")
    print("|---" * (2 + 1 + len(args.overheads)) + "|")
    for size in args.groups:
        cpu: collections.Counter[str] = collections.Counter()
        groups = [sentences[i:i + size] for i in range(0, len(sentences) - size + 1, size)]
        for _ in range(2):
            for group in groups:
                lengths = _token_counts(predictor, group)
                plans = [("one-pass", min(size, 64))]
                plans += [(f"oh{n}", pass_size(lengths, 64, overhead_tokens=n)) for n in args.overheads]
                for name, batch_size in plans:
                    start = cpu_seconds(os.getpid())
                    predictor.encode(group, batch_size=batch_size)
                    cpu[name] += cpu_seconds(os.getpid()) - start
        total = 2 * len(groups) * size
        print(f"| {size} | {os.getloadavg()[0]:.1f} | " + " | ".join(f"{cpu[name] / total * 1000:.3f}" for name in cpu)
              + " |", flush=True)


if __name__ == "__main__":
    main()
