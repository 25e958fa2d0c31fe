"""All heads + decoding vs embeddings only, alternating in one process (robust to a shared machine).

    .venv/bin/python benchmarks/speed/predict_overhead.py DIR [--threads 1] [--sentences 1000] [--rounds 5]

DIR is any directory load_predictor accepts (a saved model, or an ONNX / OpenVINO export). Prints the
fastest predict and encode time over the first N unique STS-B test sentences and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prepare import stsb_test  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    import torch

    from mtst.inference.backends import load_predictor

    torch.set_num_threads(args.threads)
    texts = stsb_test()[0][: args.sentences]
    predictor = load_predictor(args.model, threads=args.threads)
    predictor.predict(texts[:64], batch_size=args.batch_size)  # warm-up
    best = {"predict": float("inf"), "encode": float("inf")}
    for _ in range(args.rounds):
        for name, call in (("predict", predictor.predict), ("encode", predictor.encode)):
            start = time.perf_counter()
            call(texts, batch_size=args.batch_size)
            best[name] = min(best[name], time.perf_counter() - start)
    print(f"{args.model}: {len(texts)} sentences, {args.threads} thread(s), fastest of {args.rounds}: "
          f"predict {best['predict']:.2f} s, encode {best['encode']:.2f} s, "
          f"ratio {best['predict'] / best['encode']:.3f}")


if __name__ == "__main__":
    main()
