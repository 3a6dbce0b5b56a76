"""torchvision's classic CNNs, registered under torchvision's own names with its builders and weights enums."""

from __future__ import annotations

import functools
from typing import Any

import torchvision
from torch import nn
from torchvision.transforms import InterpolationMode

from deploy.preprocessing import Interpolation, Preprocessing
from deploy.zoo.registry import ModelSpec, register

# name → family; the slow ones stay behind the `slow` test marker (hundreds of MB or 100+ layers).
TORCHVISION_MODELS: dict[str, tuple[str, bool]] = {
    "alexnet": ("AlexNet", False),
    **{f"vgg{depth}{bn}": ("VGG", True) for depth in (11, 13, 16, 19) for bn in ("", "_bn")},
    "googlenet": ("Inception", False),
    "inception_v3": ("Inception", False),
    "resnet18": ("ResNet", False),
    "resnet34": ("ResNet", False),
    "resnet50": ("ResNet", False),
    "resnet101": ("ResNet", True),
    "resnet152": ("ResNet", True),
    "densenet121": ("DenseNet", False),
    "densenet161": ("DenseNet", True),
    "densenet169": ("DenseNet", True),
    "densenet201": ("DenseNet", True),
}

# GoogLeNet and Inception v3 train with auxiliary heads; inference graphs never contain them.
_ARCHITECTURE_KWARGS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}
AUXILIARY_PREFIXES = ("aux1.", "aux2.", "AuxLogits.")
# torchvision's meta counts Inception v3's auxiliary head (GoogLeNet's does not); our graphs never hold it.
# InceptionAux(768): 1×1 conv 768→128 + BN, 5×5 conv 128→768 + BN, fc 768→1000.
_AUXILIARY_HEAD_PARAMS = {"inception_v3": (768 * 128 + 2 * 128) + (128 * 768 * 25 + 2 * 768) + (768 * 1000 + 1000)}

# Where each family keeps its classifier's last Linear (what torchvision's fine-tuning recipes replace).
_HEADS = {"AlexNet": "classifier.6", "VGG": "classifier.6", "Inception": "fc", "ResNet": "fc", "DenseNet": "classifier"}

_INTERPOLATION: dict[InterpolationMode, Interpolation] = {
    InterpolationMode.NEAREST: "nearest",
    InterpolationMode.BILINEAR: "bilinear",
    InterpolationMode.BICUBIC: "bicubic",
}


def preprocessing_of(weights: torchvision.models.WeightsEnum) -> Preprocessing:
    """The preprocessing a torchvision weights entry was trained with (its `transforms()` preset)."""
    preset = weights.transforms()
    return Preprocessing(
        resize_size=int(preset.resize_size[0]),
        crop_size=int(preset.crop_size[0]),
        mean=tuple(float(v) for v in preset.mean),
        std=tuple(float(v) for v in preset.std),
        interpolation=_INTERPOLATION[preset.interpolation],
        color="RGB",
    )


def build_random(name: str) -> nn.Module:
    return torchvision.models.get_model(name, weights=None, **_ARCHITECTURE_KWARGS.get(name, {}))


def build_pretrained(name: str, weights: torchvision.models.WeightsEnum) -> nn.Module:
    """torchvision's own builder with its weights (it sets transform_input etc. as the weights need)."""
    kwargs = {"aux_logits": False} if name in _ARCHITECTURE_KWARGS else {}
    return torchvision.models.get_model(name, weights=weights, **kwargs)


def _spec(name: str, family: str, slow: bool) -> ModelSpec:
    enum = torchvision.models.get_model_weights(name)
    default = enum.DEFAULT
    prep = preprocessing_of(default)
    return ModelSpec(
        name=name,
        family=family,
        source="torchvision",
        build=functools.partial(build_random, name),
        input_shape=(3, prep.crop_size, prep.crop_size),
        preprocessing=prep,
        num_params=int(default.meta["num_params"]) - _AUXILIARY_HEAD_PARAMS.get(name, 0),
        labels=tuple(default.meta["categories"]),
        labels_source=f"torchvision {enum.__name__} meta (ImageNet-1k)",
        default_weights="DEFAULT",
        weights_enum=enum.__name__,
        slow=slow,
        head=_HEADS[family],
    )


def register_all() -> None:
    for name, (family, slow) in TORCHVISION_MODELS.items():
        register(_spec(name, family, slow))
