"""int8 settings against torch on the shipped model: label agreement, STS-B Spearman, cosine (and CPU time).

    .venv/bin/python benchmarks/speed/int8_sweep.py [--settings a,b] [--work /tmp/mtst-int8-sweep] [--speed]

Every setting is quantised from the same fp32 export of the shipped trained model. Agreement with torch fp32
(``mtst.inference.agreement.predicted_labels`` / ``label_agreement``: arg-max label per sentence, per word for NER)
on the first 300 and 1,000 unique STS-B test sentences, batch 64; STS-B Spearman and cosine to torch over all of
them. These numbers do not depend on machine load. ``--speed`` then times ``encode`` of each built setting
alternately in one process (1 thread, fastest of 5 over 1,000 sentences, this process's CPU time), relative to
the first setting. "template" calibration is the synthetic file mtst shipped before, read from git history.
Results: one JSON line per setting on stdout and in <work>/sweep.jsonl.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prepare import stsb_test  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_COMMIT = "7a73b16"  # last commit with the synthetic template calibration.txt
HEADS = "/model/(?!encoder/)"
FFN_OUT = "/model/encoder/transformer/encoder/layer\\.[{}]/output/dense/"
OLD = {"calibration": "template", "float": [], "ranges": "mean"}
NEW = {"calibration": "shipped", "float": [HEADS], "ranges": "minmax"}
SETTINGS = {
    "ov-old-default": OLD,
    "ov-heads-fp32": {**OLD, "float": [HEADS]},
    "ov-heads-sq-off": {**OLD, "float": [HEADS], "smooth_quant": -1},
    "ov-heads-sq-0.5": {**OLD, "float": [HEADS], "smooth_quant": 0.5},
    "ov-heads-bias-correction": {**OLD, "calibration": "shipped", "float": [HEADS], "fast_bias_correction": False},
    "ov-natural": {**OLD, "calibration": "shipped", "float": [HEADS]},
    "ov-natural-minmax": NEW,
    "ov-natural-minmax-ffn0": {**NEW, "float": [HEADS, FFN_OUT.format("0")]},
    "ov-new-default": {**NEW, "float": [HEADS, FFN_OUT.format("01")]},
    "ov-natural-minmax-ffn012": {**NEW, "float": [HEADS, FFN_OUT.format("012")]},
    "ov-natural-ffn-all": {**NEW, "ranges": "mean", "float": [HEADS, FFN_OUT.format("0-9")]},
    "ov-bf16": {"format": "openvino-fp32"},
    "onnx-new-default": {"format": "onnx-int8"},
}


def calibration_sentences(name: str) -> list[str]:
    from mtst.inference.quantize import read_calibration

    if name == "shipped":
        return read_calibration(None)
    text = subprocess.run(["git", "show", f"{TEMPLATE_COMMIT}:src/mtst/calibration.txt"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in text.splitlines() if line.strip()]


def build_openvino(setting: dict, work: Path, target: Path, model) -> None:
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    from mtst.inference.export import _feeds

    advanced = AdvancedQuantizationParameters()
    if setting.get("ranges") == "minmax":
        advanced.activations_range_estimator_params = RangeEstimatorParametersSet.MINMAX
    if "smooth_quant" in setting:
        advanced.smooth_quant_alphas = AdvancedSmoothQuantParameters(matmul=setting["smooth_quant"])
    items = [_feeds(model, [text]) for text in calibration_sentences(setting["calibration"])]
    quantized = nncf.quantize(ov.convert_model(str(work / "onnx-fp32" / "model.onnx")), nncf.Dataset(items),
                              model_type=nncf.ModelType.TRANSFORMER, subset_size=len(items),
                              fast_bias_correction=setting.get("fast_bias_correction", True),
                              ignored_scope=nncf.IgnoredScope(patterns=setting["float"], validate=False),
                              advanced_parameters=advanced)
    shutil.copytree(work / "openvino-fp32", target)
    ov.save_model(quantized, str(target / "openvino_model.xml"), compress_to_fp16=False)


def evaluate(name: str, directory: Path, reference: dict, texts: list[str], pairs: np.ndarray) -> dict:
    from mtst.inference.agreement import label_agreement, predicted_labels
    from mtst.inference.backends import load_predictor

    predictor = load_predictor(directory, threads=2)
    vectors = predictor.encode(texts, batch_size=64)
    cosine = (vectors * reference["vectors"]).sum(-1)
    a, b, gold = pairs[:, 0].astype(int), pairs[:, 1].astype(int), pairs[:, 2]
    labels = predicted_labels(predictor, texts[: len(reference["labels"])], batch_size=64)
    percent = lambda report: {task: round(100 * value, 1) for task, value in report.items()}  # noqa: E731
    spearman = 100 * spearmanr((vectors[a] * vectors[b]).sum(-1), gold).statistic
    return {"setting": name, "stsb_spearman": round(spearman, 2),
            "cos_mean": round(float(cosine.mean()), 5), "cos_min": round(float(cosine.min()), 5),
            "agreement_300": percent(label_agreement(reference["labels"][:300], labels[:300])),
            "agreement_1000": percent(label_agreement(reference["labels"], labels))}


def cpu_times(directories: dict[str, Path], texts: list[str], rounds: int = 5) -> dict[str, float]:
    from mtst.inference.backends import load_predictor

    predictors = {name: load_predictor(path, threads=1) for name, path in directories.items()}
    best = dict.fromkeys(predictors, float("inf"))
    for _ in range(rounds):
        for name, predictor in predictors.items():
            start = time.process_time()
            predictor.encode(texts, batch_size=64)
            best[name] = min(best[name], time.process_time() - start)
    first = best[next(iter(best))]
    return {name: round(seconds / first, 3) for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/mtst-int8-sweep"))
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--sample", type=int, default=1000, help="sentences compared with torch")
    parser.add_argument("--speed", action="store_true", help="also time encode of the settings built in --work")
    args = parser.parse_args()
    import torch

    from mtst import MultiTaskModel
    from mtst.inference.agreement import predicted_labels
    from mtst.inference.export import export_model

    torch.set_num_threads(2)
    names = args.settings.split(",")
    texts, pairs = stsb_test()
    args.work.mkdir(parents=True, exist_ok=True)
    for format, quantize in (("onnx", None), ("openvino", None), ("onnx", "int8")):
        out = args.work / f"{format}-{quantize or 'fp32'}"
        if not out.exists():
            export_model(None, out, format=format, quantize=quantize)
    model = MultiTaskModel.load(None)
    reference = {"labels": predicted_labels(model, texts[: args.sample], batch_size=64),
                 "vectors": model.encode(texts, batch_size=64)}
    built = {}
    for name in names:
        setting = SETTINGS[name]
        target = args.work / setting["format"] if "format" in setting else args.work / name
        if "format" not in setting and not target.exists():
            build_openvino(setting, args.work, target, model)
        built[name] = target
        row = evaluate(name, target, reference, texts, np.asarray(pairs))
        print(json.dumps(row), flush=True)
        with (args.work / "sweep.jsonl").open("a") as handle:
            handle.write(json.dumps(row) + "\n")
    if args.speed:
        print(json.dumps({"cpu_time_vs_first": cpu_times(built, texts[:1000])}), flush=True)


if __name__ == "__main__":
    main()
