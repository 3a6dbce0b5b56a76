from __future__ import annotations

import pytest
import torch
from torch import nn

from deploy.errors import UnknownModel
from deploy.zoo import get_spec, list_models, register
from deploy.zoo.weights import count_parameters

ALL_MODELS = list_models()
EXPECTED = {
    "alexnet", "alexnet2012", "googlenet", "inception_v3", "inception_block", "lenet5",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "densenet121", "densenet161", "densenet169", "densenet201",
    "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
}  # fmt: skip


def test_zoo_registers_every_architecture_the_design_names() -> None:
    assert set(ALL_MODELS) == EXPECTED


@pytest.mark.parametrize("name", ALL_MODELS)
def test_built_architecture_has_the_reference_parameter_count(name: str) -> None:
    spec = get_spec(name)
    assert count_parameters(spec.build()) == spec.num_params


def test_reference_counts_of_our_architectures_follow_the_layer_arithmetic() -> None:
    # Written out independently of deploy.zoo.classic_specs: weights + biases per layer.
    lenet5 = 156 + 2_416 + 48_120 + 10_164 + 850
    alexnet2012 = 34_944 + 307_456 + 885_120 + 663_936 + 442_624 + 37_752_832 + 16_781_312 + 4_097_000
    inception_block = 256 + 384 + 110_720 + 64 + 12_832 + 128
    assert get_spec("lenet5").num_params == lenet5
    assert get_spec("alexnet2012").num_params == alexnet2012
    assert get_spec("inception_block").num_params == inception_block


def test_torchvision_reference_counts_come_from_the_weights_meta() -> None:
    import torchvision

    assert get_spec("resnet50").num_params == torchvision.models.ResNet50_Weights.DEFAULT.meta["num_params"]
    # Inception v3's meta includes the auxiliary classifier, which inference graphs drop.
    meta = torchvision.models.Inception_V3_Weights.DEFAULT.meta["num_params"]
    assert get_spec("inception_v3").num_params == meta - 3_326_696


def _shapes(module: nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape))) for m in module]
    with torch.no_grad():
        module(x)
    for hook in hooks:
        hook.remove()
    return shapes


def test_lenet5_layer_shapes_match_the_design() -> None:
    model = get_spec("lenet5").build()
    shapes = _shapes(model.features, torch.zeros(1, 1, 32, 32))
    assert shapes[0] == (1, 6, 28, 28) and shapes[2] == (1, 6, 14, 14)
    assert shapes[3] == (1, 16, 10, 10) and shapes[5] == (1, 16, 5, 5)
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 4  # every layer but the last
    assert model(torch.zeros(3, 1, 32, 32)).shape == (3, 10)


def test_alexnet2012_follows_the_two_gpu_paper_layout() -> None:
    model = get_spec("alexnet2012").build().eval()
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    shapes = _shapes(model.features, torch.zeros(1, 3, 227, 227))
    pooled = [s for m, s in zip(model.features, shapes, strict=True) if isinstance(m, nn.MaxPool2d)]
    assert shapes[0] == (1, 96, 55, 55)
    assert pooled == [(1, 96, 27, 27), (1, 256, 13, 13), (1, 256, 6, 6)]
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in model.features) == 2
    assert model(torch.zeros(1, 3, 227, 227)).shape == (1, 1000)


def test_inception_block_concatenates_four_branches_to_256_channels() -> None:
    model = get_spec("inception_block").build().eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 256))
    assert out.shape == (1, 256, 256, 256)
    assert (out >= 0).all()  # ReLU after every conv, max-pool branch included


def test_registry_refuses_duplicates() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(get_spec("lenet5"))


def test_list_models_filters_by_fnmatch_pattern() -> None:
    assert list_models("resnet*") == ["resnet101", "resnet152", "resnet18", "resnet34", "resnet50"]
    assert list_models("vgg1?_bn") == ["vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(UnknownModel) as info:
        get_spec("resnet05")
    assert "resnet50" in (info.value.hint or "")


def test_spec_preprocessing_follows_the_weights_transforms() -> None:
    assert get_spec("inception_v3").preprocessing.crop_size == 299
    assert get_spec("inception_v3").preprocessing.resize_size == 342
    assert get_spec("resnet50").preprocessing.resize_size == 232  # the V2 recipe is torchvision's DEFAULT
    assert get_spec("lenet5").preprocessing.color == "L"
    assert get_spec("lenet5").labels == tuple("0123456789")
    assert get_spec("inception_block").labels is None
