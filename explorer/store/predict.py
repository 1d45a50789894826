"""Predicting with a trained model: raw inputs in, per-task labels and probabilities out.

Shared by runs loaded from the run store and by exported bundles, so both give
the same answers for the same weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from explorer.data.preprocess import Preprocessor
from explorer.data.tasks import Task
from models import MultiTaskModel


@dataclass
class Predictor:
    model: MultiTaskModel
    tasks: list[Task]
    preprocessor: Preprocessor
    target_stats: dict[str, tuple[float, float]]

    def transform(self, inputs) -> torch.Tensor:
        if self.preprocessor.modality == "text" and isinstance(inputs, str):
            inputs = [inputs]
        if self.preprocessor.modality == "tabular" and not isinstance(inputs, pd.DataFrame):
            inputs = pd.DataFrame(inputs if isinstance(inputs, list) else [inputs])
        return self.preprocessor.transform(inputs)

    @torch.no_grad()
    def raw_outputs(self, inputs) -> dict[str, np.ndarray]:
        self.model.eval()
        out = self.model(self.transform(inputs))
        return {k: v.numpy() for k, v in out.items()}

    def predict(self, inputs) -> dict[str, dict]:
        """Per task: ``labels`` (class names or values) and, for classes, ``probabilities``
        (rows x classes) and ``classes``."""
        raw = self.raw_outputs(inputs)
        result = {}
        for t in self.tasks:
            out = raw[t.name]
            if t.is_classification:
                probs = torch.softmax(torch.as_tensor(out), dim=1).numpy()
                result[t.name] = {"labels": [t.classes[i] for i in probs.argmax(1)],
                                  "probabilities": probs, "classes": list(t.classes)}
            else:
                mean, std = self.target_stats.get(t.name, (0.0, 1.0))
                result[t.name] = {"labels": (out[:, 0] * std + mean).tolist()}
        return result
