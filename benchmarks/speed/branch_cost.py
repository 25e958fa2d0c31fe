"""What a task branch costs at inference: all-heads predict / encode alone for branch_at k = 6 (no branch) .. 2,
in torch and in an OpenVINO export (its default precision), alternating rounds in one process; and the shipped
size of each (branch + heads, float32 and bfloat16).

    .venv/bin/python benchmarks/speed/branch_cost.py [--threads 2] [--sentences 1000] [--rounds 5]

Cost depends on the architecture, not on trained weights, so each model is the shipped default's heads over a
branch copied from the backbone (what training starts from); the NER head is measured as shipped (windowed) and
with word shapes + CRF. Writes benchmarks/speed/results/branch_cost.json and its table into docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prepare import stsb_test  # noqa: E402
from report import replace_block  # noqa: E402
from run import run_metadata  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results" / "branch_cost.json"
BEGIN, END = "<!-- branch-cost:begin -->", "<!-- branch-cost:end -->"
HEADING = "## What a task branch costs at inference"


def build(work: Path, branch_at: int | None, ner: str) -> Path:
    """The shipped default's heads over a fresh branch (weights do not change the cost)."""
    import torch

    from mtst import MultiTaskModel

    torch.manual_seed(0)
    shipped = MultiTaskModel.load()
    model = MultiTaskModel.from_backbone(branch_at=branch_at)
    extras = {"word_shape": "on", "crf": True} if ner == "windowed+shape+crf" else {}
    for name, head in shipped.config.heads.items():
        model.add_head(name, head.type, head.labels, head.hidden_dim, head.dropout, **(extras if name == "ner" else {}))
    directory = work / f"k{branch_at}-{ner}"
    model.save(directory, include_encoder=False)
    return directory


def timed(call, texts: list[str]) -> float:
    start = time.perf_counter()
    call(texts)
    return time.perf_counter() - start


def ratio(predictor, texts: list[str], rounds: int) -> dict:
    """Median seconds of predict (every head, no embedding) and encode over alternating rounds, and their ratio."""
    predictor.predict(texts[:64])  # warm-up: lazy sessions, first allocations
    predictor.encode(texts[:64])
    predict, encode = [], []
    for _ in range(rounds):
        predict.append(timed(predictor.predict, texts))
        encode.append(timed(predictor.encode, texts))
    p, e = statistics.median(predict), statistics.median(encode)
    return {"predict_s": round(p, 3), "encode_s": round(e, 3), "ratio": round(p / e, 3),
            "predict_sentences_per_s": round(len(texts) / p, 1), "encode_sentences_per_s": round(len(texts) / e, 1)}


def sizes(directory: Path, work: Path) -> dict:
    from mtst import MultiTaskModel

    model = MultiTaskModel.load(directory)
    half = model.save(work / (directory.name + "-bf16"), include_encoder=False, dtype="bfloat16")
    files = ("branch.safetensors", "heads.safetensors")
    return {precision: sum((d / f).stat().st_size for f in files if (d / f).exists())
            for precision, d in (("float32", directory), ("bfloat16", half))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--branches", type=int, nargs="+", default=[6, 5, 4, 3, 2])
    parser.add_argument("--no-openvino", action="store_true")
    args = parser.parse_args()
    import torch

    from mtst.inference.backends import load_predictor
    from mtst.inference.export import export_model

    started, load_before = time.time(), os.getloadavg()
    torch.set_num_threads(args.threads)
    texts = stsb_test()[0][: args.sentences]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for k in args.branches:
            for ner in ("windowed", "windowed+shape+crf"):
                directory = build(work, None if k == 6 else k, ner)
                row = {"branch_at": k, "ner_head": ner, "size_bytes": sizes(directory, work),
                       "torch": ratio(load_predictor(directory, threads=args.threads), texts, args.rounds)}
                if not args.no_openvino:
                    exported = export_model(directory, work / f"{directory.name}-ov", format="openvino")
                    predictor = load_predictor(exported, threads=args.threads)
                    row["openvino"] = {**ratio(predictor, texts, args.rounds), "precision": predictor.runtime_precision}
                rows.append(row)
                print(json.dumps(row), flush=True)
    report = {**run_metadata("branch_cost.py", started, load_before, args.threads), "sentences": len(texts),
              "rounds": args.rounds, "rows": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    replace_block(ROOT / "docs" / "performance.md", render(report), BEGIN, END, HEADING)


def render(report: dict) -> str:
    hw = report["hardware"]
    lines = [BEGIN, f"Run {report['started_utc']} UTC, command `.venv/bin/python {report['command'].strip()}`, "
             f"{hw['cpu']}, {hw['threads']} thread(s), load average before / after {report['load_average_before']} / "
             f"{report['load_average_after']}; {report['sentences']} unique STS-B test sentences, median of "
             f"{report['rounds']} alternating rounds. Ratio = predict (every head) / encode (embedding alone).", "",
             "| branch_at | NER head | torch predict / encode | OpenVINO predict / encode (precision) | "
             "branch + heads, fp32 / bf16 |", "|---|---|---|---|---|"]
    for row in report["rows"]:
        ov = row.get("openvino")
        ov_text = f"{ov['ratio']:.3f} ({ov['precision']})" if ov else "-"
        size = row["size_bytes"]
        lines.append(f"| {'none (6)' if row['branch_at'] == 6 else row['branch_at']} | {row['ner_head']} | "
                     f"{row['torch']['ratio']:.3f} | {ov_text} | {size['float32'] / 1e6:.1f} / "
                     f"{size['bfloat16'] / 1e6:.1f} MB |")
    return "\n".join([*lines, END])


if __name__ == "__main__":
    main()
