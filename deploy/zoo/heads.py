"""A registered architecture with a fine-tune's head: the classifier's last Linear replaced for N classes, the way
torchvision's fine-tuning recipes do it (`model.fc = nn.Linear(model.fc.in_features, N)`)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from deploy.zoo.registry import ModelSpec


def head_of(module: nn.Module, spec: ModelSpec) -> nn.Linear:
    if spec.head is None:
        raise ValueError(f"{spec.name} has no classifier head")
    layer = module.get_submodule(spec.head)
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"{spec.name}.{spec.head} is a {type(layer).__name__}, not the Linear classifier")
    return layer


def replace_head(module: nn.Module, spec: ModelSpec, num_classes: int) -> None:
    """Swap `spec.head` for a freshly initialised Linear with `num_classes` outputs (same input width and bias)."""
    old = head_of(module, spec)
    if old.out_features == num_classes:
        return
    parent_path, _, name = str(spec.head).rpartition(".")
    parent = module.get_submodule(parent_path) if parent_path else module
    setattr(parent, name, nn.Linear(old.in_features, num_classes, bias=old.bias is not None))


def checkpoint_classes(spec: ModelSpec, state_dict: Mapping[str, torch.Tensor]) -> int | None:
    """The number of classes a checkpoint's head was trained for (rows of its weight), None when it has no head."""
    if spec.head is None:
        return None
    weight = state_dict.get(f"{spec.head}.weight")
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) and weight.ndim == 2 else None
