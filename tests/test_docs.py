"""The README's training example is a real config: it must validate as written."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from mtst.train_config import TrainConfig

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_training_example_validates():
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "README lost its training example"
    config = TrainConfig.model_validate(yaml.safe_load(blocks[0]))
    assert config.optimizer.layer_decay == 0.8 and config.freezing.mode == "bottom_k"
    assert [task.name for task in config.tasks] == ["topic", "ner"]
