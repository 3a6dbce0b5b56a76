"""A listing of the zoo for people and scripts: shapes, sizes, and which weights are usable offline."""

from __future__ import annotations

from dataclasses import dataclass

import torchvision

from deploy.errors import UnknownModel
from deploy.zoo.digits import RECIPES
from deploy.zoo.registry import get_spec, list_models
from deploy.zoo.weights import weights_cached


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    family: str
    source: str
    input_shape: tuple[int, int, int]
    num_params: int
    default_weights: str
    weights: tuple[str, ...]
    cached_weights: tuple[str, ...]
    slow: bool


def catalog(pattern: str = "*") -> list[CatalogEntry]:
    names = list_models(pattern)
    if not names:
        if not any(char in pattern for char in "*?["):
            get_spec(pattern)  # raises UnknownModel with close-name suggestions
        raise UnknownModel(f"no model matches {pattern!r}", hint="see `deploy list` for every name")
    entries = []
    for name in names:
        spec = get_spec(name)
        published: tuple[str, ...] = ()
        if spec.weights_enum is not None:
            published = tuple(member.name for member in torchvision.models.get_model_weights(name))
        entries.append(
            CatalogEntry(
                name=spec.name,
                family=spec.family,
                source=spec.source,
                input_shape=spec.input_shape,
                num_params=spec.num_params,
                default_weights=spec.default_weights,
                weights=(*published, *(("digits",) if spec.name in RECIPES else ()), "random"),
                cached_weights=tuple(weights_cached(spec)),
                slow=spec.slow,
            )
        )
    return entries
