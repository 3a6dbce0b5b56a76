"""The typed model registry: explicit registration, an error on duplicates, fnmatch listing."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from deploy.errors import UnknownModel
from deploy.preprocessing import Preprocessing
from deploy.samples import SampleSet

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """What every later stage needs to know about an architecture, so nothing downstream guesses."""

    name: str
    family: str
    source: Literal["torchvision", "deploy", "user"]
    build: Callable[[], nn.Module] = field(repr=False, compare=False)
    input_shape: tuple[int, int, int]  # C, H, W
    preprocessing: Preprocessing
    num_params: int
    labels: tuple[str, ...] | None
    labels_source: str | None
    default_weights: str
    weights_enum: str | None = None  # torchvision's weights enum, e.g. "ResNet50_Weights"
    sample_set: SampleSet = "photos"
    input_name: str = "input"
    output_name: str = "logits"
    slow: bool = False  # large enough that tests keep it behind the `slow` marker
    # The classifier's last Linear as a module path ("fc", "classifier.6"): what fine-tuning replaces to change
    # the number of classes. None: the model ends in feature maps, not class scores.
    head: str | None = None

    @property
    def channels(self) -> int:
        return self.input_shape[0]

    @property
    def num_classes(self) -> int | None:
        return None if self.labels is None else len(self.labels)


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_models(pattern: str = "*") -> list[str]:
    return sorted(name for name in _REGISTRY if fnmatch.fnmatchcase(name, pattern.lower()))


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        close = difflib.get_close_matches(name.lower(), _REGISTRY, n=3, cutoff=0.5)
        elsewhere = "an ONNX made elsewhere comes in with `deploy import FILE`"
        suggestion = f"did you mean {', '.join(close)}?" if close else f"see `deploy list`; {elsewhere}"
        raise UnknownModel(f"unknown model {name!r}", hint=suggestion) from None
