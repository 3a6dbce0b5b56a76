from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torchvision
from PIL import Image

from deploy.errors import BadInput
from deploy.preprocessing import Preprocessing, load_image, preprocess, to_color
from deploy.samples import sample_photos
from deploy.zoo import get_spec
from deploy.zoo.torchvision_zoo import preprocessing_of


@pytest.mark.parametrize(
    "weights",
    [
        torchvision.models.ResNet50_Weights.IMAGENET1K_V2,
        torchvision.models.Inception_V3_Weights.IMAGENET1K_V1,
        torchvision.models.DenseNet121_Weights.IMAGENET1K_V1,
    ],
)
def test_preprocess_reproduces_torchvision_transforms_on_real_photos(
    weights: torchvision.models.WeightsEnum,
) -> None:
    transform = weights.transforms()
    prep = preprocessing_of(weights)
    for sample in sample_photos(4):
        image = sample.image.convert("RGB")
        expected = transform(image).numpy()
        np.testing.assert_allclose(preprocess(image, prep), expected, atol=1e-5)


def test_lenet5_preprocessing_gives_one_gray_channel() -> None:
    prep = get_spec("lenet5").preprocessing
    out = preprocess(sample_photos(1)[0].image, prep)
    assert out.shape == (1, 32, 32) and out.dtype == np.float32


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F", "1"])
def test_every_pillow_mode_converts_to_the_model_input(mode: str) -> None:
    photo = sample_photos(1)[0].image  # chelsea, RGB
    if mode in {"I;16", "I", "F"}:
        gray = np.asarray(photo.convert("L"), dtype=np.float64)
        scaled = gray * 257.0 if mode != "F" else gray / 255.0
        image = Image.fromarray(scaled.astype({"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]))
        if mode == "I;16":
            assert image.mode == "I;16"
    else:
        image = photo.convert(mode)
    prep = get_spec("resnet18").preprocessing
    out = preprocess(image, prep)
    assert out.shape == (3, 224, 224) and np.isfinite(out).all()
    # Not collapsed to a constant (Pillow's own 16-bit → 8-bit conversion clips everything to white).
    assert out.std() > 0.1


def test_sixteen_bit_images_are_rescaled_not_clipped() -> None:
    values = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    converted = np.asarray(to_color(Image.fromarray(values), "L"))
    assert converted.min() == 0 and converted.max() == 255
    assert len(np.unique(converted)) > 200


def test_load_image_rejects_a_file_that_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("not a picture")
    with pytest.raises(BadInput, match="not an image"):
        load_image(path)


def test_load_image_rejects_a_truncated_image(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    sample_photos(1)[0].image.save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInput, match="corrupt or truncated"):
        load_image(path)


def test_decompression_bomb_guard_stays_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 300)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)  # 90,000 pixels: above the limit, below twice it
    with pytest.raises(BadInput, match="too large"):
        load_image(path)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    image = Image.new("RGB", (40, 20))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    image.save(path, exif=exif)
    assert load_image(path).size == (20, 40)


def test_missing_image_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"nope\.png"):
        load_image(tmp_path / "nope.png")


def test_preprocessing_round_trips_through_its_dict() -> None:
    prep = Preprocessing(256, 224, (0.1, 0.2, 0.3), (0.4, 0.5, 0.6), "bicubic", "RGB")
    assert Preprocessing.from_dict(prep.to_dict()) == prep
