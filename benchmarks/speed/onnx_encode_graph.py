"""ONNX Runtime encode: the whole exported graph (fetching only the embedding) vs mtst's encoder part.

    .venv/bin/python benchmarks/speed/onnx_encode_graph.py DIR [--threads 1] [--sentences 1000] [--rounds 5]

DIR is an ONNX export (fp32 or int8). ONNX Runtime runs every node whatever outputs are fetched, so
``OnnxPredictor`` cuts the graph at the embedding (``mtst.inference.runtimes.encoder_graph``) and ``encode`` runs only
the encoder part. Both are timed alternately in one process over the same batches (fastest of N rounds,
wall and this process's CPU time: robust to a shared machine); also prints the resident memory each load added.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prepare import stsb_test  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    import onnxruntime as ort

    from mtst.inference.runtimes import OnnxPredictor

    texts = stsb_test()[0][: args.sentences]
    predictor = OnnxPredictor(args.export_dir, threads=args.threads)  # also pays the imports, not measured
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    start = rss_mb()
    whole = ort.InferenceSession(str(args.export_dir / predictor.info["graph"]), options,
                                 providers=["CPUExecutionProvider"])
    whole_mb = rss_mb() - start
    start = rss_mb()
    second = OnnxPredictor(args.export_dir, threads=args.threads)  # a second copy: what mtst's load costs
    split_mb = rss_mb() - start
    del second
    runs = {"whole graph": lambda feeds: whole.run(["sentence_embedding"], feeds)[0],
            "encoder part": lambda feeds: predictor.session.run(["sentence_embedding"], feeds)[0]}
    outputs, best = {}, {name: (float("inf"), float("inf")) for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            predictor.run_embeddings = run  # encode() batches, tokenises and orders exactly the same way
            wall, cpu = time.perf_counter(), time.process_time()
            outputs[name] = predictor.encode(texts, batch_size=args.batch_size)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    (whole_wall, whole_cpu), (part_wall, part_cpu) = best["whole graph"], best["encoder part"]
    same = float(np.abs(outputs["whole graph"] - outputs["encoder part"]).max())
    print(f"{args.export_dir}: {len(texts)} sentences, {args.threads} thread(s), batch {args.batch_size}, "
          f"fastest of {args.rounds}: whole graph {whole_wall:.2f} s wall / {whole_cpu:.2f} s CPU, "
          f"encoder part {part_wall:.2f} s / {part_cpu:.2f} s CPU -> CPU time x{part_cpu / whole_cpu:.3f}; "
          f"max |diff| {same:.1e}; RSS added by loading: the whole graph {whole_mb:.0f} MB, an OnnxPredictor (two "
          f"sessions, tokenizer, and what Python keeps of the load) {split_mb:.0f} MB")


if __name__ == "__main__":
    main()
