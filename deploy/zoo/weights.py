"""Resolve `--weights` (a torchvision weights name, a checkpoint path, or `random`) into an eval-mode module."""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import socket
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torchvision
from torch import nn

from deploy.customization import Customization
from deploy.errors import BadInput, WeightsError, first_line
from deploy.files import sha256_file
from deploy.preprocessing import Preprocessing, preprocess_batch
from deploy.samples import samples_for
from deploy.zoo.heads import checkpoint_classes, head_of, replace_head
from deploy.zoo.registry import ModelSpec
from deploy.zoo.torchvision_zoo import AUXILIARY_PREFIXES, build_pretrained, preprocessing_of

log = logging.getLogger(__name__)

RANDOM_SEED = 0
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
_DOWNLOAD_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's parameters came from; recorded in every sidecar."""

    kind: Literal["torchvision", "checkpoint", "random", "digits", "module"]
    name: str
    preprocessing: Preprocessing
    labels: tuple[str, ...] | None
    labels_source: str | None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, **self.detail}


@dataclass(frozen=True)
class LoadedModel:
    spec: ModelSpec
    module: nn.Module
    source: WeightsSource  # its preprocessing and labels are the customized ones
    num_classes: int | None = None  # outputs of the classifier head; None for a feature extractor

    @property
    def num_params(self) -> int:
        return count_parameters(self.module)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        prep = self.source.preprocessing
        return (prep.channels, prep.crop_size, prep.crop_size)

    @property
    def head_replaced(self) -> bool:
        """The classifier head was swapped for a fine-tune's number of classes."""
        return self.num_classes != self.spec.num_classes


def count_parameters(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def load_model(spec: ModelSpec, weights: str | None = None, custom: Customization | None = None) -> LoadedModel:
    """Build `spec` with the requested weights, in eval mode, ready to export or to serve as the eager reference.

    `custom` fine-tunes the spec: a head for its number of classes (read from a checkpoint's head when not given),
    its labels and its preprocessing."""
    custom = custom or Customization()
    classes = custom.classes
    if classes is not None and spec.head is None:
        raise BadInput(
            f"{spec.name} ends in feature maps, not a classifier head, so {_class_options(custom)} cannot apply",
            hint=f"drop {_class_options(custom)}, or choose a classifier (see `deploy list`)",
        )
    choice = spec.default_weights if weights is None else weights
    if choice.lower() == "random":
        module, source = _random(spec, classes)
    elif choice.lower() == "digits":
        module, source = _digits(spec, classes)
    elif _looks_like_path(choice):
        # A checkpoint's head says how many classes it has: --labels are checked against it, not used to size it.
        module, source = _checkpoint(spec, Path(choice), custom.num_classes)
    else:
        module, source = _torchvision(spec, choice, classes)
    num_classes = head_of(module, spec).out_features if spec.head is not None else None
    loaded = LoadedModel(spec, module.eval(), _customized(source, custom, num_classes), num_classes)
    if custom.input_size is not None:
        _check_input_size(loaded)
    return loaded


def _check_input_size(loaded: LoadedModel) -> None:
    """A network with a fixed-size flatten (LeNet-5, AlexNet-2012) refuses other sizes: said before the export."""
    size = loaded.input_shape[1]
    try:
        with torch.no_grad():
            loaded.module(torch.zeros(1, *loaded.input_shape))
    except RuntimeError as exc:
        raise BadInput(
            f"{loaded.spec.name} cannot take {size}x{size} inputs ({first_line(exc)})",
            hint=f"drop --input-size: {loaded.spec.name} takes {loaded.spec.input_shape[1]}x"
            f"{loaded.spec.input_shape[2]} only",
        ) from exc


def _customized(source: WeightsSource, custom: Customization, num_classes: int | None) -> WeightsSource:
    """The preprocessing and labels of `source` with `custom`'s overrides; labels that no longer fit are dropped."""
    labels, labels_source = source.labels, source.labels_source
    if custom.labels is not None:
        if num_classes is not None and len(custom.labels) != num_classes:
            raise BadInput(
                f"--labels {custom.labels_source or ''} names {len(custom.labels)} classes, and the model's head "
                f"has {num_classes} outputs",
                hint=f"give {num_classes} labels, one per class in the order the model was trained with",
            )
        labels, labels_source = custom.labels, custom.labels_source or "--labels"
    elif labels is not None and len(labels) != num_classes:
        labels, labels_source = None, None  # a fine-tune's classes are not ImageNet's: "class 0", "class 1", …
    prep = custom.preprocessing(source.preprocessing)
    return dataclasses.replace(source, preprocessing=prep, labels=labels, labels_source=labels_source)


def _class_options(custom: Customization) -> str:
    return custom.options_text("--num-classes", "--labels")


def _refuse_new_head(spec: ModelSpec, weights: str, classes: int | None, trained: int | None) -> None:
    """Published or demo weights come with their own head: another class count needs the fine-tune's checkpoint."""
    if classes is None or classes == trained:
        return
    raise WeightsError(
        f"{weights} weights of {spec.name} classify {trained} classes, not {classes}: a new head would be untrained",
        hint=f"pass your fine-tune's checkpoint (--weights PATH, saved with torch.save(model.state_dict(), PATH)); "
        f"--weights random --num-classes {classes} gives an untrained head for parity checks",
    )


def recorded_name(spec: ModelSpec, weights: str | None) -> str:
    """The name an export with `--weights weights` records (WeightsInfo.argument), without building anything:
    `DEFAULT` → `ResNet50_Weights.IMAGENET1K_V2`, a checkpoint → its resolved path. An unknown value stays as it is
    (loading it is what reports why)."""
    choice = spec.default_weights if weights is None else weights
    if choice.lower() in ("random", "digits"):
        return choice.lower()
    if _looks_like_path(choice):
        return str(Path(choice).resolve())
    if spec.weights_enum is None:
        return choice
    enum = torchvision.models.get_model_weights(spec.name)
    member = choice.split(".", 1)[1] if choice.startswith(f"{enum.__name__}.") else choice
    return f"{enum.__name__}.{enum[member].name}" if member in enum.__members__ else choice


def _looks_like_path(choice: str) -> bool:
    return os.sep in choice or "/" in choice or choice.endswith(_CHECKPOINT_SUFFIXES) or Path(choice).exists()


def _random(spec: ModelSpec, classes: int | None) -> tuple[nn.Module, WeightsSource]:
    torch.manual_seed(RANDOM_SEED)
    module = spec.build()
    if classes is not None:
        replace_head(module, spec, classes)
    recalibrated = recalibrate_batchnorm(module, _calibration_batches(spec))
    detail = {"seed": RANDOM_SEED, "batchnorm_recalibrated_layers": recalibrated}
    source = WeightsSource("random", "random", spec.preprocessing, spec.labels, spec.labels_source, detail)
    return module, source


def _digits(spec: ModelSpec, classes: int | None) -> tuple[nn.Module, WeightsSource]:
    """The architecture trained on sklearn's digits by deploy.zoo.digits (a 10-class head for the torchvision
    families, at the recipe's input size); trained once, then read from the cache."""
    from deploy.zoo.digits import DIGIT_LABELS, RECIPES, load_or_train_digits

    recipe = RECIPES.get(spec.name)
    if recipe is None:
        published = "a torchvision weights name, " if spec.weights_enum is not None else ""
        raise WeightsError(
            f"'digits' weights exist for {', '.join(RECIPES)}, not {spec.name}",
            hint=f"use {published}--weights random or --weights PATH (`deploy list` shows each model's weights)",
        )
    _refuse_new_head(spec, "digits", classes, len(DIGIT_LABELS))
    torch.manual_seed(RANDOM_SEED)
    module = spec.build()
    replace_head(module, spec, len(DIGIT_LABELS))
    prep = recipe.preprocessing(spec.preprocessing.color)
    trained = load_or_train_digits(module, prep, recipe)
    module.load_state_dict(trained.state_dict)
    detail = {
        "test_accuracy": trained.test_accuracy,
        "epochs": trained.epochs,
        "input_size": recipe.size,
        "recipe": recipe.name,
        "train_seconds": None if trained.seconds is None else round(trained.seconds, 1),
        "cache": str(trained.cache),
    }
    source = WeightsSource("digits", "digits", prep, DIGIT_LABELS, "digits 0-9", detail)
    return module, source


def _calibration_batches(spec: ModelSpec, batch_size: int = 8) -> Iterable[torch.Tensor]:
    """Real sample images and their mirror images, so BatchNorm sees natural-image statistics."""
    images = [
        sample.image for sample in samples_for(spec.sample_set, count=None if spec.sample_set == "photos" else 64)
    ]
    array = preprocess_batch(images, spec.preprocessing)
    tensor = torch.from_numpy(array)
    tensor = torch.cat([tensor, torch.flip(tensor, dims=[3])])
    return list(torch.split(tensor, batch_size))


def recalibrate_batchnorm(module: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Replace BatchNorm running statistics with the exact averages over `batches`; returns the layer count.

    Untouched BN on random weights normalises with mean 0 / var 1, which saturates deep networks into predicting
    one class for every input — useless for parity. Train-mode passes with momentum=None give cumulative averages.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    module.train()
    with torch.no_grad():
        for batch in batches:
            module(batch)
    for norm in norms:
        norm.momentum = 0.1
    module.eval()
    return len(norms)


def _checkpoint(spec: ModelSpec, path: Path, classes: int | None) -> tuple[nn.Module, WeightsSource]:
    if not path.is_file():
        raise WeightsError(
            f"checkpoint {path} does not exist",
            hint="pass a state_dict saved with torch.save(model.state_dict(), PATH), a torchvision weights name, "
            "or --weights random",
        )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise WeightsError(
            f"checkpoint {path} is not a loadable state_dict ({first_line(exc)})",
            hint="save weights with torch.save(model.state_dict(), PATH); pickled whole models are refused "
            "because loading them runs arbitrary code",
        ) from exc
    state_dict = _unwrap_state_dict(loaded, path)
    trained = checkpoint_classes(spec, state_dict)
    if classes is not None and trained is not None and classes != trained:
        raise WeightsError(
            f"checkpoint {path} has a head for {trained} classes ({spec.head}.weight), not the {classes} asked for",
            hint=f"drop --num-classes (the checkpoint's head gives {trained}) and pass {trained} --labels, or pass "
            f"the checkpoint of the {classes}-class fine-tune",
        )
    torch.manual_seed(RANDOM_SEED)
    module = spec.build()
    head = classes or trained
    if head is not None:
        replace_head(module, spec, head)
    ignored = _drop_auxiliary_heads(state_dict, module)
    missing, unexpected = _key_mismatch(module, state_dict)
    if missing or unexpected:
        raise WeightsError(
            f"checkpoint {path} does not fit {spec.name}: missing keys {_few(missing)}, "
            f"unexpected keys {_few(unexpected)}",
            hint=f"pass a checkpoint trained for {spec.name} (see `deploy list`)",
        )
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        shape_errors = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line]
        raise WeightsError(
            f"checkpoint {path} does not fit {spec.name}: {'; '.join(shape_errors[:3]) or exc}",
            hint=f"pass a checkpoint trained for {spec.name}",
        ) from exc
    detail: dict[str, Any] = {"path": str(path.resolve()), "sha256": sha256_file(path), "ignored_keys": len(ignored)}
    if hasattr(module, "transform_input"):
        # GoogLeNet/Inception v3 built from torchvision's weights remap ImageNet-normalised input to the scale they
        # were trained at (transform_input=True), and a state_dict does not record it: a fine-tune of those weights
        # (the usual start) needs it, or it sees inputs at about twice its training scale with no error anywhere.
        setattr(module, "transform_input", True)  # noqa: B010  # a plain attribute, read by forward()
        detail["transform_input"] = True
    return module, WeightsSource("checkpoint", str(path), spec.preprocessing, spec.labels, spec.labels_source, detail)


def _unwrap_state_dict(loaded: object, path: Path) -> dict[str, torch.Tensor]:
    """Accept a bare state_dict, a Lightning/trainer wrapper around one, and DataParallel's `module.` prefix."""
    candidate = loaded
    if isinstance(candidate, Mapping):
        for key in _WRAPPER_KEYS:
            if isinstance(candidate.get(key), Mapping):
                candidate = candidate[key]
                break
    if (
        not isinstance(candidate, Mapping)
        or not candidate
        or not all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in candidate.items())
    ):
        raise WeightsError(
            f"checkpoint {path} holds a {type(loaded).__name__}, not a state_dict of tensors",
            hint="save weights with torch.save(model.state_dict(), PATH)",
        )
    state_dict = dict(candidate)
    if all(key.startswith("module.") for key in state_dict):
        state_dict = {key.removeprefix("module."): value for key, value in state_dict.items()}
    return state_dict


def _drop_auxiliary_heads(state_dict: dict[str, torch.Tensor], module: nn.Module) -> list[str]:
    """Training checkpoints of GoogLeNet/Inception v3 carry auxiliary classifiers inference does not use."""
    own = set(module.state_dict())
    ignored = [key for key in state_dict if key.startswith(AUXILIARY_PREFIXES) and key not in own]
    for key in ignored:
        del state_dict[key]
    return ignored


def _key_mismatch(module: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    own = set(module.state_dict())
    given = set(state_dict)
    return sorted(own - given), sorted(given - own)


def _few(keys: list[str], limit: int = 4) -> str:
    if not keys:
        return "none"
    shown = ", ".join(keys[:limit])
    return f"{shown} (+{len(keys) - limit} more)" if len(keys) > limit else shown


def _torchvision(spec: ModelSpec, choice: str, classes: int | None) -> tuple[nn.Module, WeightsSource]:
    if spec.weights_enum is None:
        raise WeightsError(
            f"{spec.name} has no published weights named {choice!r}",
            hint="use --weights random or --weights PATH to a state_dict",
        )
    enum = torchvision.models.get_model_weights(spec.name)
    member = choice.split(".", 1)[1] if choice.startswith(f"{enum.__name__}.") else choice
    if member not in enum.__members__:
        names = ", ".join(["DEFAULT", *(m for m in enum.__members__ if m != "DEFAULT")])
        raise WeightsError(
            f"{spec.name} has no weights {choice!r}",
            hint=f"choose one of {names}, random, or a checkpoint PATH",
        )
    weights = enum[member]
    _refuse_new_head(spec, f"{enum.__name__}.{weights.name}", classes, len(weights.meta["categories"]))
    cached = cached_weights_path(weights)
    try:
        with _socket_timeout(_DOWNLOAD_TIMEOUT_S):
            module = build_pretrained(spec.name, weights)
    except (OSError, RuntimeError, ValueError) as exc:
        raise WeightsError(
            f"pretrained weights {enum.__name__}.{weights.name} are not in torchvision's cache ({cached}) and "
            f"could not be downloaded: {first_line(exc)}",
            hint="use --weights random for a parity-only export, or --weights PATH for a local state_dict "
            f"(or copy the file to {cached})",
        ) from exc
    detail = {"weights": f"{enum.__name__}.{weights.name}", "url": weights.url, "cache": str(cached)}
    labels = tuple(weights.meta["categories"])
    source = WeightsSource(
        "torchvision",
        f"{enum.__name__}.{weights.name}",
        preprocessing_of(weights),
        labels,
        spec.labels_source,
        detail,
    )
    return module, source


def cached_weights_path(weights: torchvision.models.WeightsEnum) -> Path:
    filename = os.path.basename(urllib.parse.urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def weights_cached(spec: ModelSpec) -> list[str]:
    """Names of this model's weights already on this machine (what `deploy list` marks as cached)."""
    from deploy.zoo.digits import RECIPES, cache_path

    digits = ["digits"] if spec.name in RECIPES and cache_path(RECIPES[spec.name]).is_file() else []
    if spec.weights_enum is None:
        return digits
    enum = torchvision.models.get_model_weights(spec.name)
    return [member.name for member in enum if cached_weights_path(member).is_file()] + digits


class _socket_timeout:
    """Bound each network read of a weights download, so an unreachable host fails instead of hanging."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.previous: float | None = None

    def __enter__(self) -> None:
        self.previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(self.seconds)

    def __exit__(self, *exc_info: object) -> None:
        socket.setdefaulttimeout(self.previous)
