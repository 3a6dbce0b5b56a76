"""`deploy list` answers from deploy.listing: the same rows as the registry, without importing torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deploy.listing import ZOO, catalog, torch_hub_dir


def test_the_static_listing_matches_the_registry() -> None:
    from deploy.zoo.catalog import registry_listing

    expected = registry_listing()
    rows = "\n".join(f"    {row!r}," for row in expected)
    assert expected == ZOO, f"paste these rows into deploy/listing.py's ZOO:\n{rows}"


def test_deploy_list_and_its_json_import_no_torch() -> None:
    script = textwrap.dedent(
        """
        import sys
        from typer.testing import CliRunner
        from deploy.cli import app
        for args in (["list"], ["list", "res*", "--json"]):
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 0, result.output
        heavy = sorted(name for name in ("torch", "torchvision", "onnx", "onnxruntime") if name in sys.modules)
        print(",".join(heavy))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "", f"deploy list imported {done.stdout.strip()}"


def test_listing_finds_cached_weights_where_torch_and_deploy_keep_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from deploy.zoo import get_spec
    from deploy.zoo.weights import weights_cached

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("DEPLOY_CACHE", str(tmp_path / "deploy"))
    assert torch_hub_dir() == Path(torch.hub.get_dir())
    assert catalog("resnet18")[0].cached_weights == ()
    (torch_hub_dir() / "checkpoints").mkdir(parents=True)
    (torch_hub_dir() / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"")  # listing looks, never loads
    (tmp_path / "deploy").mkdir()
    digits = next(row.digits for row in ZOO if row.name == "resnet18")
    (tmp_path / "deploy" / f"{digits}.pt").write_bytes(b"")
    for name in ("resnet18", "resnet50", "lenet5"):
        assert list(catalog(name)[0].cached_weights) == weights_cached(get_spec(name)), name
    assert catalog("resnet18")[0].cached_weights == ("IMAGENET1K_V1", "digits")


def test_an_unknown_name_is_refused_with_close_names_and_a_pattern_that_matches_nothing_says_so() -> None:
    from deploy.errors import UnknownModel

    with pytest.raises(UnknownModel, match="unknown model 'resnet19'") as caught:
        catalog("resnet19")
    assert caught.value.hint is not None and "resnet18" in caught.value.hint
    with pytest.raises(UnknownModel, match="no model matches 'xyz\\*'"):
        catalog("xyz*")
