"""CPU time per sentence of offline ``encode`` at several batch sizes: what small server batches cost.

    .venv/bin/python benchmarks/load/batch_sweep.py [--sentences 640] [--batch-sizes 1 4 8 16 64]

Uses the model ``mtst serve`` would serve (default model, else the demo model), the first N unique STS-B
test sentences, and ``OMP_WAIT_POLICY=PASSIVE`` like the server.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported, as in `mtst serve`

from run import STSB_TEST, cpu_seconds, stsb_sentences  # noqa: E402  (same folder)


def main() -> None:
    from mtst.cli.loading import load_task_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=640)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8, 16, 64])
    args = parser.parse_args()
    sentences = stsb_sentences(STSB_TEST)[: args.sentences]
    model = load_task_model(None, "torch")
    model.encode(sentences[:64])  # warm-up
    print(f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, load average {os.getloadavg()[0]:.2f}")
    print("| batch size | CPU ms per sentence |")
    print("|---|---|")
    for batch_size in args.batch_sizes:
        start = cpu_seconds(os.getpid())
        model.encode(sentences, batch_size=batch_size)
        print(f"| {batch_size} | {(cpu_seconds(os.getpid()) - start) / len(sentences) * 1000:.2f} |")


if __name__ == "__main__":
    main()
