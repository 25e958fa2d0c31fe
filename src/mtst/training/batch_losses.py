"""One single-task training batch -> its loss: collate, move to the device, run what trains.

Cached frozen outputs stand in for what does not train (mtst.training.feature_cache): a frozen encoder's
head inputs, or a branch's shared bottom. With distillation each batch's loss toward the teacher's outputs comes too
(mtst.training.distillation). A side network has no cache: the model's forward runs the frozen backbone
without an autograd graph, then the side network and the heads with one. Pair tasks embed both sentences through
the embedding path; the other tasks run the model's forward pass (the heads, and the embedding only for the anchor).
"""

from __future__ import annotations

import torch

from mtst.data.task_encoding import EncodedTask, collate, collate_pairs
from mtst.model.multitask import MultiTaskModel
from mtst.training.anchor import EmbeddingAnchor
from mtst.training.distillation import TeacherTargets
from mtst.training.feature_cache import SECOND, FeatureCache

Losses = tuple[dict[str, torch.Tensor], torch.Tensor | None, torch.Tensor | None]


class BatchLosses:
    def __init__(self, model: MultiTaskModel, encoded: dict[str, EncodedTask], cache: FeatureCache | None,
                 anchor: EmbeddingAnchor | None, bf16: bool, device: torch.device,
                 teacher: TeacherTargets | None = None):
        self.model, self.encoded, self.cache, self.anchor, self.teacher = model, encoded, cache, anchor, teacher
        self.bf16, self.device = bf16, device

    def __call__(self, task: str, indices: list[int]) -> Losses:
        """({task: loss}, unweighted anchor loss or None, weighted distillation loss or None) for one single-task
        batch; from cached frozen outputs when there are any (mtst.training.feature_cache)."""
        device = self.device
        if task in self.model.objectives:
            return {task: self._pair_loss(task, indices)}, None, None
        features, labels = collate(self.model.tokenizer, self.encoded[task], indices)
        labels = labels.to(device)  # (B,) or (B, T)
        features = {k: v.to(device) for k, v in features.items() if k != "word_ids"}
        if self.cache is not None and self.model.branch is None:  # heads alone on a frozen encoder
            head = self.model.heads[task]
            inputs = self.cache.batch(task, indices).to(device)
            logits = head(inputs, features.get("shape_ids"))
            out = {"logits": {task: logits}, head.reads: inputs}
            return {task: head.loss(logits, labels)}, None, self._distilled(task, indices, out, features, labels)
        if self.cache is not None:
            features["shared_states"] = self.cache.batch(task, indices).to(device)  # (B, T, H)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.model(features, tasks=[task], labels={task: labels}, embedding=self.anchor is not None)
            anchor = self.anchor.loss(task, indices, out["sentence_embedding"]) if self.anchor else None  # ()
        return out["losses"], anchor, self._distilled(task, indices, out, features, labels)

    def _distilled(self, task: str, indices: list[int], out: dict, features: dict, labels: torch.Tensor
                   ) -> torch.Tensor | None:
        if self.teacher is None:
            return None
        return self.teacher.loss(task, indices, out, features["attention_mask"], labels)

    def _pair_loss(self, task: str, indices: list[int]) -> torch.Tensor:
        """A pair task's loss on the embedding path: both sides embedded, then the task's objective."""
        device = self.device
        first, second, scores = collate_pairs(self.model.tokenizer, self.encoded[task], indices)
        sides = []
        for key, features in ((task, first), (task + SECOND, second)):
            features = {k: v.to(device) for k, v in features.items() if k != "word_ids"}
            if self.cache is not None:  # a branch: the frozen shared bottom of both sentences was cached
                features["shared_states"] = self.cache.batch(key, indices).to(device)
            sides.append(features)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16):
            embeddings = [self.model.embed(features) for features in sides]  # (B, H) each
        return self.model.objectives[task].loss(*embeddings, scores.to(device))
