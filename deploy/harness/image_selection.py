"""The images a command is given: named files, folders (walked lazily) and glob patterns, checked up front."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from deploy.errors import BadInput
from deploy.preprocessing import glob_files, is_glob, is_readable_image, iter_files, load_image


@dataclass(frozen=True)
class Found:
    """A file found in a folder or by a glob, not named by the user: one that is not an image is passed over
    (counted), one that fails to decode is skipped with a warning. A plain path is strict: any failure is an error."""

    path: Path
    source: str  # the folder or pattern that found it


@dataclass(frozen=True)
class _Folder:
    path: Path


@dataclass(frozen=True)
class _Pattern:
    text: str
    matches: tuple[Path, ...]


@dataclass(frozen=True)
class ImageSelection:
    """Image arguments resolved and checked up front: each named file is an image, each folder and glob has at
    least one. Iterating yields named files as paths and what folders and globs find as `Found`, folders lazily."""

    sources: tuple[Path | _Folder | _Pattern, ...]

    def __iter__(self) -> Iterator[Path | Found]:
        for source in self.sources:
            if isinstance(source, _Folder):
                yield from (Found(path, str(source.path)) for path in iter_files(source.path))
            elif isinstance(source, _Pattern):
                yield from (Found(path, source.text) for path in source.matches)
            else:
                yield source


def select_images(arguments: Sequence[str | os.PathLike[str]]) -> ImageSelection:
    """Files, folders (recursively, images only, sorted) and glob patterns (quoted, expanded here, sorted).
    Refused up front: a missing path, a named file that is not an image, a folder or pattern with no image."""
    if not arguments:
        raise BadInput("no images given", hint="pass image files, folders or quoted globs ('photos/*.jpg')")
    sources: list[Path | _Folder | _Pattern] = []
    for argument in arguments:
        text, path = os.fspath(argument), Path(argument)
        if path.is_dir():
            _first_image(iter_files(path), f"image folder {path}", empty="is empty")
            sources.append(_Folder(path))
        elif path.is_file() or not is_glob(text):
            check_named(path)
            sources.append(path)
        else:
            matches = tuple(glob_files(text))
            _first_image(iter(matches), f"glob {text!r}", empty="matches no files")
            sources.append(_Pattern(text, matches))
    return ImageSelection(tuple(sources))


def check_named(path: Path) -> None:
    """A file the user named: it exists and Pillow recognises it (header checks only; decoding comes later)."""
    if not path.is_file():
        raise BadInput(
            f"image {path} does not exist" if not path.exists() else f"image {path} is not a file",
            hint="check the path; `deploy infer` also takes folders and quoted globs such as 'photos/*.jpg'",
        )
    if not is_readable_image(path):
        load_image(path)  # raises the precise reason (not an image, truncated, too large); verify can be stricter


def _first_image(paths: Iterator[Path], what: str, *, empty: str) -> None:
    """Refuse a folder or pattern in which no file is an image, reading only up to its first image."""
    files = 0
    for path in paths:
        if is_readable_image(path):
            return
        files += 1
    if files == 0:
        raise BadInput(f"{what} {empty}", hint="check the path or pattern; quote a glob: 'photos/*.jpg'")
    raise BadInput(
        f"{what} has no images: none of its {files} file{'s' * (files != 1)} is an image Pillow reads",
        hint="pass a folder or pattern that holds JPEG, PNG, BMP, TIFF or WebP images",
    )


@functools.cache
def image_suffixes() -> frozenset[str]:
    return frozenset(Image.registered_extensions())


def looks_like_image(path: Path) -> bool:
    """Named like an image (.jpg, .png, ... any suffix Pillow registers): if it fails to decode it is a damaged
    image, skipped with a warning; a file named otherwise that Pillow does not recognise is simply not an image."""
    return path.suffix.lower() in image_suffixes()
