"""Shared fixtures: real sample photos on disk, and exported artifacts made once per test session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from PIL import Image
from typer.testing import CliRunner

from deploy.exporter import ExportConfig, ExportResult, export_model
from deploy.samples import sample_digits, sample_photos

# Weights deploy trains itself (`--weights digits`) go to a per-run cache, removed at exit, never the user's
# ~/.cache/deploy. `DEPLOY_TEST_CACHE=DIR pytest -m trained` keeps them in DIR instead, read back by later runs rather
# than retrained (CI starts without one, so every CI run trains from scratch).
if os.environ.get("DEPLOY_TEST_CACHE"):
    os.environ["DEPLOY_CACHE"] = os.environ["DEPLOY_TEST_CACHE"]
else:
    _RUN_CACHE = tempfile.mkdtemp(prefix="deploy-test-cache-")
    os.environ["DEPLOY_CACHE"] = _RUN_CACHE
    atexit.register(shutil.rmtree, _RUN_CACHE, ignore_errors=True)

# The adversarial suite (tests/test_fuzz.py): a few examples per test by default, many in CI's slow step
# (`pytest tests/test_fuzz.py --hypothesis-profile=deploy-long`). Every example runs a real command: no deadline.
_FUZZ = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("deploy", max_examples=12, **_FUZZ)
settings.register_profile("deploy-long", max_examples=150, **_FUZZ)
settings.load_profile("deploy")


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few of scikit-image's real photos saved as JPEG/PNG files, as a user would pass them."""
    folder = tmp_path_factory.mktemp("photos")
    for sample in sample_photos(4):
        sample.image.convert("RGB").save(folder / f"{sample.name}.jpg", quality=95)
    return folder


@pytest.fixture(scope="session")
def digit_files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, int]]:
    folder = tmp_path_factory.mktemp("digits")
    files = []
    for sample in sample_digits(20, offset=1500):
        path = folder / f"digit{sample.label}_{len(files)}.png"
        sample.image.save(path)
        files.append((path, int(sample.label or 0)))
    return files


@pytest.fixture(scope="session")
def lenet5_export(tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    return export_model(ExportConfig(model="lenet5", out_dir=tmp_path_factory.mktemp("export")))


@pytest.fixture(scope="session")
def resnet18_export(tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    return export_model(ExportConfig(model="resnet18", weights="random", out_dir=tmp_path_factory.mktemp("export")))


@pytest.fixture()
def cli() -> CliRunner:
    return CliRunner()


def save_image(image: Image.Image, path: Path, **kwargs: object) -> Path:
    image.save(path, **kwargs)
    return path
