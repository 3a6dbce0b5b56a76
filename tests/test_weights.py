from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deploy.errors import WeightsError
from deploy.preprocessing import preprocess_batch
from deploy.samples import sample_photos
from deploy.zoo import get_spec, load_model
from deploy.zoo.weights import cached_weights_path


def _predictions(module: torch.nn.Module, prep_name: str) -> np.ndarray:
    spec = get_spec(prep_name)
    batch = torch.from_numpy(preprocess_batch([s.image for s in sample_photos()], spec.preprocessing))
    with torch.inference_mode():
        return module(batch).argmax(dim=1).numpy()


def test_random_weights_with_recalibrated_batchnorm_are_not_degenerate() -> None:
    loaded = load_model(get_spec("resnet18"), "random")
    assert loaded.source.detail["batchnorm_recalibrated_layers"] == 20
    assert not loaded.module.training
    assert len(set(_predictions(loaded.module, "resnet18"))) >= 4


def test_untouched_batchnorm_is_what_recalibration_fixes() -> None:
    # The failure mode the recalibration exists for: fresh BN statistics give one class for every input.
    torch.manual_seed(0)
    module = get_spec("resnet18").build().eval()
    assert len(set(_predictions(module, "resnet18"))) == 1


def test_random_weights_are_reproducible() -> None:
    a = load_model(get_spec("lenet5"), "random").module.state_dict()
    b = load_model(get_spec("lenet5"), "random").module.state_dict()
    assert all(torch.equal(a[key], b[key]) for key in a)


def _random_lenet_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(123)
    return get_spec("lenet5").build().state_dict()


def test_checkpoint_state_dict_loads_exactly(tmp_path: Path) -> None:
    state = _random_lenet_state()
    path = tmp_path / "lenet.pt"
    torch.save(state, path)
    loaded = load_model(get_spec("lenet5"), str(path))
    assert loaded.source.kind == "checkpoint"
    assert all(torch.equal(loaded.module.state_dict()[k], v) for k, v in state.items())


def test_checkpoint_wrapped_by_a_trainer_and_dataparallel_loads(tmp_path: Path) -> None:
    state = _random_lenet_state()
    path = tmp_path / "wrapped.ckpt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    loaded = load_model(get_spec("lenet5"), str(path))
    assert all(torch.equal(loaded.module.state_dict()[k], v) for k, v in state.items())


def test_pickled_whole_model_is_refused_as_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "whole.pt"
    torch.save(get_spec("lenet5").build(), path)
    with pytest.raises(WeightsError, match="not a loadable state_dict") as info:
        load_model(get_spec("lenet5"), str(path))
    assert "state_dict()" in (info.value.hint or "")


def test_checkpoint_holding_something_else_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(WeightsError, match="not a state_dict"):
        load_model(get_spec("lenet5"), str(path))


def test_checkpoint_for_another_architecture_names_missing_and_unexpected_keys(tmp_path: Path) -> None:
    path = tmp_path / "inception_block.pt"
    torch.save(get_spec("inception_block").build().state_dict(), path)
    with pytest.raises(WeightsError) as info:
        load_model(get_spec("lenet5"), str(path))
    message = info.value.message
    assert "missing keys classifier.1.bias" in message and "unexpected keys branch1x1.0.bias" in message


def test_checkpoint_with_wrong_shapes_names_the_mismatch(tmp_path: Path) -> None:
    state = _random_lenet_state()  # a head of another size is a fine-tune (tests/test_custom.py); a body is not
    state["classifier.3.weight"] = torch.zeros(42, 120)
    path = tmp_path / "wider_layer.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError, match="size mismatch"):
        load_model(get_spec("lenet5"), str(path))


def test_missing_checkpoint_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        load_model(get_spec("lenet5"), str(tmp_path / "absent.pt"))


def test_unknown_weights_name_lists_the_choices() -> None:
    with pytest.raises(WeightsError) as info:
        load_model(get_spec("resnet50"), "IMAGENET1K_V9")
    assert "IMAGENET1K_V2" in (info.value.hint or "") and "random" in (info.value.hint or "")


def test_our_architectures_have_no_published_weights() -> None:
    with pytest.raises(WeightsError, match="no published weights"):
        load_model(get_spec("alexnet2012"), "DEFAULT")


def test_pretrained_weights_absent_from_cache_fail_naming_the_alternatives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache; downloads cannot reach the host here
    import torchvision

    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    assert cached_weights_path(weights).parent.parent.parent == tmp_path
    with pytest.raises(WeightsError) as info:
        load_model(get_spec("resnet18"), "DEFAULT")
    assert "--weights random" in (info.value.hint or "") and "--weights PATH" in (info.value.hint or "")
    assert not cached_weights_path(weights).exists()


def test_pretrained_weights_in_the_cache_are_used_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file placed where torchvision caches weights is found without any network access."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    target = cached_weights_path(weights)
    target.parent.mkdir(parents=True)
    torch.manual_seed(7)
    state = torchvision.models.resnet18().state_dict()
    torch.save(state, target)
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    loaded = load_model(get_spec("resnet18"), "IMAGENET1K_V1")
    assert loaded.source.kind == "torchvision" and loaded.source.name == "ResNet18_Weights.IMAGENET1K_V1"
    assert torch.equal(loaded.module.state_dict()["fc.weight"], state["fc.weight"])
    assert loaded.source.labels is not None and loaded.source.labels[0] == "tench"


def _no_network(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("cached weights must not be downloaded")
