"""One SetFit 1.2 fit in its own environment (/work/venvs/setfit): never imports mtst, so SetFit's pins cannot touch
the project's. Reads {model_dir, threads, seed, texts, labels, eval_texts} from a JSON file and writes
{predictions, seconds, versions}: SetFit's default TrainingArguments except ``seed`` (the draw's, as mtst's fits).

    /work/venvs/setfit/bin/python benchmarks/fewshot/setfit_runner.py IN.json OUT.json
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version


def main(source: str, target: str) -> None:
    import torch
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    job = json.loads(open(source, encoding="utf-8").read())
    torch.set_num_threads(job["threads"])
    model = SetFitModel.from_pretrained(job["model_dir"], local_files_only=True)  # the hub is out of reach
    train = Dataset.from_dict({"text": job["texts"], "label": job["labels"]})
    trainer = Trainer(model=model, args=TrainingArguments(seed=job["seed"]), train_dataset=train)
    started = time.perf_counter()
    trainer.train()  # contrastive body training, then the logistic head on the trained embeddings
    seconds = time.perf_counter() - started
    predictions = [str(label) for label in model.predict(job["eval_texts"], batch_size=64)]
    out = {"predictions": predictions, "seconds": seconds,
           "versions": {name: version(name) for name in ("setfit", "sentence-transformers", "transformers", "torch")}}
    with open(target, "w", encoding="utf-8") as file:
        json.dump(out, file)


if __name__ == "__main__":
    main(*sys.argv[1:3])
