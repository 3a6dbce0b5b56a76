"""The README's Python API examples, executed as written (a README that lies is worse than none)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from deploy.zoo import get_spec, load_model

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks(heading: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    end = text.find("\n#", start + len(heading) + 2)
    return re.findall(r"```python\n(.*?)```", text[start : end if end != -1 else None], flags=re.DOTALL)


def test_the_readme_python_api_examples_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digit_files: list[tuple[Path, int]], capsys: pytest.CaptureFixture
) -> None:
    blocks = _python_blocks("### Python API")
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    # What the example takes as given: a checkpoint a training script saved, class names, an image to classify.
    torch.save(load_model(get_spec("lenet5"), "digits").module.state_dict(), tmp_path / "lenet5_digits.pt")
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    (tmp_path / "labels.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    image, digit = digit_files[0]
    (tmp_path / "digit.png").write_bytes(image.read_bytes())

    exec(compile(blocks[0], "README.md (Python API, fine-tune)", "exec"), {})
    printed = capsys.readouterr().out
    assert f"digit.png {names[digit]}" in printed  # the INT8 artifact reads the digit with the user's label
    assert (tmp_path / "export" / "lenet5.onnx").is_file()

    exec(compile(blocks[1], "README.md (Python API, own module)", "exec"), {})
    assert "tiny.onnx" in capsys.readouterr().out
    assert (tmp_path / "export" / "tiny.json").is_file()


def test_no_public_function_is_shadowed_by_a_submodule() -> None:
    """Importing `deploy.X` sets the package attribute X to that module: an API function named like a submodule
    would turn into the module after first use (PEP 562's __getattr__ only runs for missing names)."""
    import pkgutil

    import deploy

    submodules = {info.name for info in pkgutil.iter_modules(deploy.__path__)}
    assert not submodules & set(deploy.__all__)
    for name in deploy.__all__:
        assert getattr(deploy, name) is not None
