"""STS-B test Spearman of ONNX Runtime dynamic int8 settings on an mtst ONNX fp32 export.

    .venv/bin/python benchmarks/speed/onnx_int8_settings.py /tmp/mtst-bench-speed/onnx-fp32

Tries per-tensor, per-channel and per-channel + reduce_range weights, each on the raw graph and after
ONNX Runtime's quantisation pre-processing; prints one Spearman (x100) per setting.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prepare import stsb_test  # noqa: E402

SETTINGS = {"per-tensor": (False, False), "per-channel": (True, False), "per-channel+reduce_range": (True, True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path, help="an fp32 directory written by mtst export --format onnx")
    args = parser.parse_args()
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from mtst.inference.backends import load_predictor

    texts, pairs = stsb_test()
    table = np.asarray(pairs)
    a, b, gold = table[:, 0].astype(int), table[:, 1].astype(int), table[:, 2]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sources = {"raw": args.export_dir / "model.onnx", "pre-processed": work / "pre.onnx"}
        quant_pre_process(str(sources["raw"]), str(sources["pre-processed"]), skip_symbolic_shape=True)
        for name, (per_channel, reduce_range) in SETTINGS.items():
            for source_name, source in sources.items():
                target = work / f"{name}-{source_name}"
                shutil.copytree(args.export_dir, target)
                quantize_dynamic(str(source), str(target / "model.onnx"), weight_type=QuantType.QInt8,
                                 per_channel=per_channel, reduce_range=reduce_range)
                vectors = load_predictor(target, threads=1).encode(texts, batch_size=128)
                score = 100 * spearmanr((vectors[a] * vectors[b]).sum(-1), gold).statistic
                print(f"{name:26s} {source_name:14s} STS-B Spearman {score:.2f}", flush=True)


if __name__ == "__main__":
    main()
