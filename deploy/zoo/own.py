"""Your own `nn.Module` as a model the rest of deploy can export: a spec and weights source made from the module
itself (not registered: nothing later rebuilds it, so its exported FP32 ONNX becomes the reference)."""

from __future__ import annotations

from torch import nn

from deploy.customization import Customization
from deploy.errors import BadInput
from deploy.imported import MODEL_NAME, MODULE_KIND
from deploy.preprocessing import Preprocessing
from deploy.zoo.classic_specs import IMAGENET_MEAN, IMAGENET_STD
from deploy.zoo.registry import ModelSpec, list_models
from deploy.zoo.weights import LoadedModel, WeightsSource, count_parameters

# torchvision's resize/crop ratio for ImageNet classifiers (256/224), used when only the input size is given.
_RESIZE_RATIO = 256 / 224


def own_model(module: nn.Module, name: str, custom: Customization, *, color: str = "RGB") -> LoadedModel:
    """`module` in eval mode with the preprocessing `custom` gives (ImageNet's mean/std by default for RGB)."""
    _check_name(name)
    if custom.input_size is None:
        raise BadInput(
            f"{name}: the input size of your module cannot be read from it",
            hint="pass input_size=224 (the side of the square crop your model was trained on)",
        )
    if custom.num_classes is not None:
        raise BadInput(
            f"{name}: num_classes replaces the head of a registered architecture; your module keeps its own",
            hint="drop num_classes (pass labels=[...] to name your module's outputs)",
        )
    if color not in ("RGB", "L"):
        raise BadInput(f"color {color!r} is not RGB or L", hint='pass color="RGB" (3 channels) or color="L" (gray)')
    if color == "L" and (custom.mean is None or custom.std is None):
        raise BadInput(f"{name}: a gray model has no default normalisation", hint="pass mean=(m,) and std=(s,)")
    size = custom.input_size
    # Valid by construction; the overrides in `custom` (a resize_size below the crop, say) are refused by name there.
    # RGB: torchvision's ImageNet convention; gray: the whole image (as `deploy import` assumes for gray models).
    base = Preprocessing(
        resize_size=round(size * _RESIZE_RATIO) if color == "RGB" else size,
        crop_size=size,
        mean=IMAGENET_MEAN if color == "RGB" else (0.5,),
        std=IMAGENET_STD if color == "RGB" else (0.5,),
        color="RGB" if color == "RGB" else "L",
    )
    prep = custom.preprocessing(base)
    labels = custom.labels
    module = module.eval()
    spec = ModelSpec(
        name=name,
        family=type(module).__name__,
        source="user",
        build=lambda: module,
        input_shape=(prep.channels, prep.crop_size, prep.crop_size),
        preprocessing=prep,
        num_params=count_parameters(module),
        labels=labels,
        labels_source=None if labels is None else custom.labels_source or "labels=",
        default_weights=MODULE_KIND,
        sample_set="photos" if color == "RGB" else "digits",
    )
    kind = f"{type(module).__module__}.{type(module).__qualname__}"
    source = WeightsSource("module", kind, prep, labels, spec.labels_source)
    return LoadedModel(spec, module, source)


def _check_name(name: str) -> None:
    if not MODEL_NAME.fullmatch(name):
        raise BadInput(
            f"name {name!r} is not a plain model name",
            hint="pass name= ASCII letters, digits, '_' or '-' (it names export/NAME.onnx)",
        )
    if name.lower() in list_models():
        raise BadInput(
            f"name {name!r} is a registered architecture; later commands would rebuild that one as the reference",
            hint=f"pass another name, e.g. name='my_{name.lower()}'",
        )
