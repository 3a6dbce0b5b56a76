"""The registry's side of `deploy list`: the rows deploy.listing keeps as data, computed from the registry.

`deploy list` reads deploy.listing (no torch); this is what tests compare it with, and what prints its rows anew.
"""

from __future__ import annotations

import os
import urllib.parse

import torchvision

from deploy.listing import CatalogEntry, Listed, catalog
from deploy.zoo.digits import RECIPES
from deploy.zoo.registry import get_spec, list_models

__all__ = ["CatalogEntry", "catalog", "registry_listing"]


def registry_listing() -> tuple[Listed, ...]:
    """Every registered architecture as deploy.listing.ZOO should list it."""
    rows = []
    for name in list_models("*"):
        spec = get_spec(name)
        published: tuple[tuple[str, str], ...] = ()
        if spec.weights_enum is not None:
            published = tuple(
                (member.name, os.path.basename(urllib.parse.urlparse(member.url).path))
                for member in torchvision.models.get_model_weights(name)
            )
        rows.append(
            Listed(
                name=spec.name,
                family=spec.family,
                source=spec.source,
                input_shape=spec.input_shape,
                num_params=spec.num_params,
                default_weights=spec.default_weights,
                published=published,
                digits=RECIPES[spec.name].name if spec.name in RECIPES else None,
            )
        )
    return tuple(rows)
