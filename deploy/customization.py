"""What a fine-tune changes about a registered architecture: its classes, their names, and its preprocessing.

Pure data (no torch): the CLI and the Python API build one, the zoo applies it when it loads the module, the
export records the outcome in the sidecar, and every later command reads it from there.
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass
from pathlib import Path

from deploy.errors import BadInput
from deploy.preprocessing import MAX_SIDE, Interpolation, Preprocessing

MAX_CLASSES = 100_000  # beyond any classifier head these architectures are fine-tuned with
MAX_LABEL_LENGTH = 200
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


@dataclass(frozen=True)
class Customization:
    """Overrides of a registered model's head and preprocessing; None keeps what the weights come with.

    `num_classes` replaces the classifier head the way torchvision's fine-tuning recipes do (a new Linear of the
    same input width); with a checkpoint it is read from the checkpoint's head when not given. `labels` name the
    classes (and set their count). `input_size` is the centre crop the network sees; the resize before it keeps the
    weights' resize/crop ratio (256/224 for ImageNet weights) unless `resize_size` is given.
    """

    num_classes: int | None = None
    labels: tuple[str, ...] | None = None
    labels_source: str | None = None
    input_size: int | None = None
    resize_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    interpolation: Interpolation | None = None

    def __post_init__(self) -> None:
        for option, number in (
            ("--num-classes", self.num_classes),
            ("--input-size", self.input_size),
            ("--resize-size", self.resize_size),
        ):
            if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
                raise BadInput(f"{option} {number!r} is not a whole number", hint=f"pass e.g. {option} 224")
        if self.num_classes is not None and not 1 <= self.num_classes <= MAX_CLASSES:
            raise BadInput(
                f"--num-classes {self.num_classes} is out of range",
                hint=f"pass the number of classes the model was fine-tuned for (1 to {MAX_CLASSES})",
            )
        if self.labels is not None:
            _check_labels(self.labels, self.labels_source or "--labels")
            if self.num_classes is not None and len(self.labels) != self.num_classes:
                raise BadInput(
                    f"--labels {self.labels_source or ''} names {len(self.labels)} classes and --num-classes is "
                    f"{self.num_classes}",
                    hint=f"give one label per class, or pass --num-classes {len(self.labels)}",
                )
        for option, size in (("--input-size", self.input_size), ("--resize-size", self.resize_size)):
            if size is not None and not 1 <= size <= MAX_SIDE:
                raise BadInput(f"{option} {size} is out of range", hint=f"pass a size in pixels from 1 to {MAX_SIDE}")
        if self.interpolation is not None and self.interpolation not in _INTERPOLATIONS:
            raise BadInput(
                f"--interpolation {self.interpolation!r} is unknown", hint=f"choose one of {', '.join(_INTERPOLATIONS)}"
            )
        if self.std is not None and not all(math.isfinite(v) and v > 0 for v in self.std):
            raise BadInput(f"--std {_values(self.std)} must be positive", hint="pass e.g. --std 0.229,0.224,0.225")
        if self.mean is not None and not all(math.isfinite(v) for v in self.mean):
            raise BadInput(f"--mean {_values(self.mean)} must be finite", hint="pass e.g. --mean 0.485,0.456,0.406")

    @property
    def classes(self) -> int | None:
        """The head size asked for: --num-classes, else the number of --labels."""
        if self.num_classes is not None:
            return self.num_classes
        return None if self.labels is None else len(self.labels)

    @property
    def changes_preprocessing(self) -> bool:
        return any(
            value is not None for value in (self.input_size, self.resize_size, self.mean, self.std, self.interpolation)
        )

    @property
    def given_options(self) -> tuple[str, ...]:
        """The options this customization came from, as typed on the command line (`--num-classes 10`)."""
        given = {
            "--num-classes": self.num_classes,
            "--labels": self.labels_source,  # None for labels given as a list in Python: no file to repeat
            "--input-size": self.input_size,
            "--resize-size": self.resize_size,
            "--mean": None if self.mean is None else _values(self.mean),
            "--std": None if self.std is None else _values(self.std),
            "--interpolation": self.interpolation,
        }
        return tuple(f"{flag} {shlex.quote(str(value))}" for flag, value in given.items() if value is not None)

    def options_text(self, *flags: str) -> str:
        """The given options among `flags` (all when none are named), joined for a message."""
        return " ".join(o for o in self.given_options if not flags or o.split(" ", 1)[0] in flags)

    def preprocessing(self, base: Preprocessing) -> Preprocessing:
        """`base` with these overrides applied; a combination that cannot work is refused naming the options."""
        if not self.changes_preprocessing:
            return base
        crop = self.input_size or base.crop_size
        resize = self.resize_size or (round(crop * base.resize_size / base.crop_size) if self.input_size else None)
        try:
            return Preprocessing(
                resize_size=resize or base.resize_size,
                crop_size=crop,
                mean=base.mean if self.mean is None else self.mean,
                std=base.std if self.std is None else self.std,
                interpolation=self.interpolation or base.interpolation,
                color=base.color,
            )
        except ValueError as exc:
            raise BadInput(
                f"{self.options_text('--input-size', '--resize-size', '--mean', '--std', '--interpolation')} do "
                f"not fit this model's {base.color} input: {exc}",
                hint=f"give {base.channels} value(s) to --mean/--std and a --resize-size at least the --input-size",
            ) from exc


def read_labels(path: Path) -> tuple[str, ...]:
    """Class names from a text file (one per line; blank lines at the end ignored) or a JSON list of strings."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(
            f"labels file {path} does not exist", hint="pass --labels FILE with one class name per line"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(
            f"labels file {path} cannot be read as UTF-8 text ({exc})",
            hint="save it as UTF-8 text with one class name per line, or as a JSON list of strings",
        ) from exc
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise BadInput(
                f"labels file {path} starts like JSON but is not valid JSON ({exc})",
                hint='write a JSON list of strings (["cat", "dog"]) or one class name per line',
            ) from exc
        if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
            raise BadInput(
                f"labels file {path} holds JSON that is not a list of strings",
                hint='write a JSON list of strings (["cat", "dog"]) or one class name per line',
            )
        labels = tuple(item.strip() for item in data)
    else:
        labels = tuple(line.strip() for line in text.rstrip("\n\r ").splitlines())
    _check_labels(labels, f"labels file {path}")
    return labels


def _check_labels(labels: tuple[str, ...], what: str) -> None:
    fix = "give one non-empty class name per line (or a JSON list of strings), each on one line"
    if not labels:
        raise BadInput(f"{what} names no classes", hint=fix)
    if len(labels) > MAX_CLASSES:
        raise BadInput(f"{what} names {len(labels)} classes, more than {MAX_CLASSES}", hint=fix)
    for index, label in enumerate(labels):
        if not label or len(label) > MAX_LABEL_LENGTH or any(c in label for c in "\n\r\x00"):
            raise BadInput(f"{what}: class {index} ({label[:40]!r}) is empty, too long or not one line", hint=fix)


def _values(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:g}" for v in values)
