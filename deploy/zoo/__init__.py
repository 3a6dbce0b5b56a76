"""Architectures: the registry, ModelSpec, and weights loading. Importing this imports torch and torchvision."""

from deploy.zoo import classic_specs, torchvision_zoo
from deploy.zoo.registry import ModelSpec, get_spec, list_models, register
from deploy.zoo.weights import LoadedModel, WeightsSource, load_model

torchvision_zoo.register_all()
classic_specs.register_all()

__all__ = ["LoadedModel", "ModelSpec", "WeightsSource", "get_spec", "list_models", "load_model", "register"]
