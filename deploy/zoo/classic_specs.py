"""Registry entries for our own architectures (deploy.zoo.classic)."""

from __future__ import annotations

import torchvision

from deploy.preprocessing import Preprocessing
from deploy.zoo.classic import AlexNet2012, InceptionBlock, LeNet5
from deploy.zoo.registry import ModelSpec, register

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# sklearn's digits scaled to [0, 1]: mean and std of the whole set at 32×32, so inputs are roughly unit scale.
DIGITS_MEAN = (0.3055,)
DIGITS_STD = (0.3235,)

# Parameter counts from the layer arithmetic (weights + biases), written out so a changed layer fails a test.
LENET5_PARAMS = (1 * 6 * 25 + 6) + (6 * 16 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
ALEXNET2012_PARAMS = (
    (3 * 96 * 11 * 11 + 96)
    + (48 * 256 * 5 * 5 + 256)
    + (256 * 384 * 3 * 3 + 384)
    + (192 * 384 * 3 * 3 + 384)
    + (192 * 256 * 3 * 3 + 256)
    + (9216 * 4096 + 4096)
    + (4096 * 4096 + 4096)
    + (4096 * 1000 + 1000)
)
INCEPTION_BLOCK_PARAMS = (
    (3 * 64 + 64) + (3 * 96 + 96) + (96 * 128 * 9 + 128) + (3 * 16 + 16) + (16 * 32 * 25 + 32) + (3 * 32 + 32)
)


def register_all() -> None:
    imagenet_labels = tuple(torchvision.models.AlexNet_Weights.IMAGENET1K_V1.meta["categories"])
    register(
        ModelSpec(
            name="lenet5",
            family="LeNet",
            source="deploy",
            build=LeNet5,
            input_shape=(1, 32, 32),
            preprocessing=Preprocessing(32, 32, DIGITS_MEAN, DIGITS_STD, "bilinear", "L"),
            num_params=LENET5_PARAMS,
            labels=tuple(str(digit) for digit in range(10)),
            labels_source="digits 0-9",
            default_weights="digits",
            sample_set="digits",
            head="classifier.5",
        )
    )
    register(
        ModelSpec(
            name="alexnet2012",
            family="AlexNet",
            source="deploy",
            build=AlexNet2012,
            input_shape=(3, 227, 227),
            preprocessing=Preprocessing(256, 227, IMAGENET_MEAN, IMAGENET_STD, "bilinear", "RGB"),
            num_params=ALEXNET2012_PARAMS,
            labels=imagenet_labels,
            labels_source="ImageNet-1k class names (torchvision)",
            default_weights="random",
            head="classifier.7",
        )
    )
    register(
        ModelSpec(
            name="inception_block",
            family="Inception",
            source="deploy",
            build=InceptionBlock,
            input_shape=(3, 256, 256),
            preprocessing=Preprocessing(256, 256, IMAGENET_MEAN, IMAGENET_STD, "bilinear", "RGB"),
            num_params=INCEPTION_BLOCK_PARAMS,
            labels=None,
            labels_source=None,
            default_weights="random",
            output_name="features",
        )
    )
