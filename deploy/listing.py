"""The zoo as `deploy list` shows it, kept as data so that listing imports neither torch nor torchvision.

Reading the registry means importing torchvision (measured: 4.9 s and 830 MB on a 2-core EPYC to print a fixed
table); this table answers in a fraction of that. tests/test_listing.py holds it equal to the registry
(deploy.zoo.catalog.registry_listing), and its failure prints the rows to paste here when a model or recipe changes.
Which weights are cached is looked up on disk each time, where torch and deploy keep them.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

from deploy.errors import UnknownModel


@dataclass(frozen=True)
class Listed:
    """One architecture as the registry describes it, plus where each of its weights is kept once downloaded."""

    name: str
    family: str
    source: str
    input_shape: tuple[int, int, int]
    num_params: int
    default_weights: str
    published: tuple[tuple[str, str], ...] = ()  # torchvision weights name, its checkpoint file in torch hub's cache
    digits: str | None = None  # the digits recipe's cache name: deploy trains these weights itself


@dataclass(frozen=True)
class CatalogEntry:
    """A row of `deploy list`: shapes, size, every weights name, and which of them are on this machine."""

    name: str
    family: str
    source: str
    input_shape: tuple[int, int, int]
    num_params: int
    default_weights: str
    weights: tuple[str, ...]
    cached_weights: tuple[str, ...]


ZOO: tuple[Listed, ...] = (
    Listed(
        "alexnet",
        "AlexNet",
        "torchvision",
        (3, 224, 224),
        61_100_840,
        "DEFAULT",
        published=(("IMAGENET1K_V1", "alexnet-owt-7be5be79.pth"),),
    ),
    Listed("alexnet2012", "AlexNet", "deploy", (3, 227, 227), 60_965_224, "random"),
    Listed(
        "densenet121",
        "DenseNet",
        "torchvision",
        (3, 224, 224),
        7_978_856,
        "DEFAULT",
        published=(("IMAGENET1K_V1", "densenet121-a639ec97.pth"),),
        digits="densenet121-digits-split0-seed0-s32-e4-lr0.003-b32-shift2-onecycle-v1",
    ),
    Listed(
        "densenet161",
        "DenseNet",
        "torchvision",
        (3, 224, 224),
        28_681_000,
        "DEFAULT",
        published=(("IMAGENET1K_V1", "densenet161-8d451a50.pth"),),
    ),
    Listed(
        "densenet169",
        "DenseNet",
        "torchvision",
        (3, 224, 224),
        14_149_480,
        "DEFAULT",
        published=(("IMAGENET1K_V1", "densenet169-b2777c0a.pth"),),
    ),
    Listed(
        "densenet201",
        "DenseNet",
        "torchvision",
        (3, 224, 224),
        20_013_928,
        "DEFAULT",
        published=(("IMAGENET1K_V1", "densenet201-c1103571.pth"),),
    ),
    Listed(
        "googlenet",
        "Inception",
        "torchvision",
        (3, 224, 224),
        6_624_904,
        "DEFAULT",
        published=(("IMAGENET1K_V1", "googlenet-1378be20.pth"),),
        digits="googlenet-digits-split0-seed0-s32-e4-lr0.003-b32-shift2-onecycle-v1",
    ),
    Listed("inception_block", "Inception", "deploy", (3, 256, 256), 124_384, "random"),
    Listed(
        "inception_v3",
        "Inception",
        "torchvision",
        (3, 299, 299),
        23_834_568,
        "DEFAULT",
        published=(("IMAGENET1K_V1", "inception_v3_google-0cc3c7bd.pth"),),
    ),
    Listed("lenet5", "LeNet", "deploy", (1, 32, 32), 61_706, "digits", digits="lenet5-digits-split0-seed0-e15-v1"),
    Listed(
        "resnet101",
        "ResNet",
        "torchvision",
        (3, 224, 224),
        44_549_160,
        "DEFAULT",
        published=(("IMAGENET1K_V1", "resnet101-63fe2227.pth"), ("IMAGENET1K_V2", "resnet101-cd907fc2.pth")),
    ),
    Listed(
        "resnet152",
        "ResNet",
        "torchvision",
        (3, 224, 224),
        60_192_808,
        "DEFAULT",
        published=(("IMAGENET1K_V1", "resnet152-394f9c45.pth"), ("IMAGENET1K_V2", "resnet152-f82ba261.pth")),
    ),
    Listed(
        "resnet18",
        "ResNet",
        "torchvision",
        (3, 224, 224),
        11_689_512,
        "DEFAULT",
        published=(("IMAGENET1K_V1", "resnet18-f37072fd.pth"),),
        digits="resnet18-digits-split0-seed0-s32-e4-lr0.003-b32-shift2-onecycle-v1",
    ),
    Listed(
        "resnet34",
        "ResNet",
        "torchvision",
        (3, 224, 224),
        21_797_672,
        "DEFAULT",
        published=(("IMAGENET1K_V1", "resnet34-b627a593.pth"),),
    ),
    Listed(
        "resnet50",
        "ResNet",
        "torchvision",
        (3, 224, 224),
        25_557_032,
        "DEFAULT",
        published=(("IMAGENET1K_V1", "resnet50-0676ba61.pth"), ("IMAGENET1K_V2", "resnet50-11ad3fa6.pth")),
    ),
    Listed(
        "vgg11",
        "VGG",
        "torchvision",
        (3, 224, 224),
        132_863_336,
        "DEFAULT",
        published=(("IMAGENET1K_V1", "vgg11-8a719046.pth"),),
    ),
    Listed(
        "vgg11_bn",
        "VGG",
        "torchvision",
        (3, 224, 224),
        132_868_840,
        "DEFAULT",
        published=(("IMAGENET1K_V1", "vgg11_bn-6002323d.pth"),),
        digits="vgg11_bn-digits-split0-seed0-s32-e3-lr0.0001-b64-shift0-onecycle-v1",
    ),
    Listed(
        "vgg13",
        "VGG",
        "torchvision",
        (3, 224, 224),
        133_047_848,
        "DEFAULT",
        published=(("IMAGENET1K_V1", "vgg13-19584684.pth"),),
    ),
    Listed(
        "vgg13_bn",
        "VGG",
        "torchvision",
        (3, 224, 224),
        133_053_736,
        "DEFAULT",
        published=(("IMAGENET1K_V1", "vgg13_bn-abd245e5.pth"),),
    ),
    Listed(
        "vgg16",
        "VGG",
        "torchvision",
        (3, 224, 224),
        138_357_544,
        "DEFAULT",
        published=(
            ("IMAGENET1K_V1", "vgg16-397923af.pth"),
            ("IMAGENET1K_FEATURES", "vgg16_features-amdegroot-88682ab5.pth"),
        ),
    ),
    Listed(
        "vgg16_bn",
        "VGG",
        "torchvision",
        (3, 224, 224),
        138_365_992,
        "DEFAULT",
        published=(("IMAGENET1K_V1", "vgg16_bn-6c64b313.pth"),),
    ),
    Listed(
        "vgg19",
        "VGG",
        "torchvision",
        (3, 224, 224),
        143_667_240,
        "DEFAULT",
        published=(("IMAGENET1K_V1", "vgg19-dcbb9e9d.pth"),),
    ),
    Listed(
        "vgg19_bn",
        "VGG",
        "torchvision",
        (3, 224, 224),
        143_678_248,
        "DEFAULT",
        published=(("IMAGENET1K_V1", "vgg19_bn-c79401a0.pth"),),
    ),
)


def catalog(pattern: str = "*") -> list[CatalogEntry]:
    """The architectures matching an fnmatch `pattern` (a plain unknown name: UnknownModel with close names)."""
    names = {listed.name: listed for listed in ZOO}
    matched = sorted(name for name in names if fnmatch.fnmatchcase(name, pattern.lower()))
    if not matched:
        if not any(char in pattern for char in "*?["):
            close = difflib.get_close_matches(pattern.lower(), names, n=3, cutoff=0.5)
            elsewhere = "an ONNX made elsewhere comes in with `deploy import FILE`"
            hint = f"did you mean {', '.join(close)}?" if close else f"see `deploy list`; {elsewhere}"
            raise UnknownModel(f"unknown model {pattern!r}", hint=hint)
        raise UnknownModel(f"no model matches {pattern!r}", hint="see `deploy list` for every name")
    return [_entry(names[name]) for name in matched]


def _entry(listed: Listed) -> CatalogEntry:
    weights = (*(name for name, _ in listed.published), *(("digits",) if listed.digits else ()), "random")
    hub = torch_hub_dir() / "checkpoints"
    cached = [name for name, file in listed.published if (hub / file).is_file()]
    if listed.digits is not None and (deploy_cache_dir() / f"{listed.digits}.pt").is_file():
        cached.append("digits")
    return CatalogEntry(
        name=listed.name,
        family=listed.family,
        source=listed.source,
        input_shape=listed.input_shape,
        num_params=listed.num_params,
        default_weights=listed.default_weights,
        weights=weights,
        cached_weights=tuple(cached),
    )


def torch_hub_dir() -> Path:
    """torch.hub.get_dir() without importing torch: $TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub, else
    ~/.cache/torch/hub."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.path.expanduser(home)) / "hub"


def deploy_cache_dir() -> Path:
    """Where deploy keeps weights it made itself: $DEPLOY_CACHE, else ~/.cache/deploy (deploy.zoo.digits writes
    there; here so that `deploy list` finds them without importing torch)."""
    return Path(os.environ.get("DEPLOY_CACHE", Path.home() / ".cache" / "deploy"))
