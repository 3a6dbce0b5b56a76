"""Triton Python-backend model: class scores → the top-k labels, softmax probabilities and class indices.

Written by `deploy triton --ensemble` as `<model>_topk/1/model.py`. The ranking is `deploy infer`'s: softmax in
float64, classes ordered by probability with ties kept in index order, labels from labels.txt beside config.pbtxt
("class N" where there is none). k comes from config.pbtxt (`top_k`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

OUTPUTS = ("LABELS", "PROBABILITIES", "CLASS_INDICES")


def read_labels(folder: Path) -> tuple[str, ...] | None:
    path = folder / "labels.txt"
    if not path.is_file():
        return None
    return tuple(path.read_text(encoding="utf-8").splitlines())


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One row of scores → (indices, probabilities) of its k most probable classes."""
    shifted = scores.astype(np.float64) - scores.max()
    probabilities = np.exp(shifted) / np.exp(shifted).sum()
    order = np.argsort(-probabilities, kind="stable")[: min(k, probabilities.size)]
    return order.astype(np.int64), probabilities[order].astype(np.float32)


def label_of(index: int, labels: tuple[str, ...] | None) -> str:
    return labels[index] if labels and index < len(labels) else f"class {index}"


class TritonPythonModel:
    """The scores input (named as the classifier's output) → LABELS, PROBABILITIES, CLASS_INDICES, k each."""

    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        self.k = int(config["parameters"]["top_k"]["string_value"])
        self.input = config["input"][0]["name"]
        self.labels = read_labels(Path(args["model_repository"]))

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]  # only in Triton's stub

        responses = []
        for request in requests:
            scores = pb_utils.get_input_tensor_by_name(request, self.input).as_numpy()
            rows = scores.reshape(scores.shape[0], -1)
            ranked = [top_k(row, self.k) for row in rows]
            indices = np.stack([order for order, _ in ranked])
            probabilities = np.stack([p for _, p in ranked])
            labels = np.array(
                [[label_of(int(i), self.labels).encode("utf-8") for i in row] for row in indices], dtype=np.object_
            )
            tensors = zip(OUTPUTS, (labels, probabilities, indices), strict=True)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(n, t) for n, t in tensors]))
        return responses
