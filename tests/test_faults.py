"""Faults during real commands: SIGINT and SIGTERM unwind and remove what was staged; after kill -9 (nothing can
clean up) the next command in that folder sweeps what the dead process left, and only that."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.exporter import ExportResult
from deploy.files import sha256_file

DEPLOY = str(Path(sys.executable).with_name("deploy"))
EXITS = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _scratch(folder: Path, purpose: str) -> list[Path]:
    return [p for p in folder.glob(".deploy-tmp.*") if f".{purpose}." in p.name]


def _signal_when_staged(command: list[str], folder: Path, purpose: str, signum: int) -> tuple[int, str, list[Path]]:
    """Start `command`, wait until it has staged a `purpose` file in `folder`, send `signum`; return its exit code,
    stderr and what was staged at the moment of the signal."""
    process = subprocess.Popen(command, cwd=folder.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    there_before = set(_scratch(folder, purpose)) if folder.is_dir() else set()
    staged: list[Path] = []
    while not staged and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
        staged = [p for p in _scratch(folder, purpose) if p not in there_before] if folder.is_dir() else []
    assert staged, f"`{' '.join(command)}` finished or timed out before staging a {purpose} file"
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr, staged


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)], ids=lambda s: s.name
)
def test_a_signal_during_export_unwinds_and_publishes_nothing(
    signum: int, lenet5_export: ExportResult, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    code, stderr, staged = _signal_when_staged(
        [DEPLOY, "export", "lenet5", "--out-dir", str(out)], out, "lenet5.onnx", signum
    )
    assert code == EXITS[signum], stderr
    assert "nothing half-written was kept" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == []  # neither the staged ONNX nor a sidecar
    assert staged and not any(p.exists() for p in staged)


def test_after_kill_9_during_export_the_next_export_sweeps_what_was_left(
    lenet5_export: ExportResult, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    out.mkdir()
    # A temp file of a live process in the same folder is not ours to sweep.
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        foreign = out / f".deploy-tmp.{_host_tag()}.{alive.pid}.lenet5.onnx.keep.tmp"
        foreign.write_bytes(b"a live writer's file")
        _, _, staged = _signal_when_staged(
            [DEPLOY, "export", "lenet5", "--out-dir", str(out)], out, "lenet5.onnx", signal.SIGKILL
        )
        left = [p for p in staged if p.exists()]
        assert left, "kill -9 cannot clean up: the staged file should still be there"

        done = subprocess.run(
            [DEPLOY, "export", "lenet5", "--out-dir", str(out)], cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert not any(p.exists() for p in left)
        assert foreign.exists()
        assert sha256_file(out / "lenet5.onnx") == sha256_file(lenet5_export.onnx_path)
    finally:
        alive.kill()
        alive.wait()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_a_signal_during_build_publishes_nothing_and_leaves_the_export_untouched(
    signum: int, lenet5_export: ExportResult, tmp_path: Path
) -> None:
    export_dir, engines = tmp_path / "export", tmp_path / "engines"
    export_dir.mkdir()
    for source in (lenet5_export.onnx_path, lenet5_export.sidecar_path):
        shutil.copy2(source, export_dir / source.name)
    before = {p.name: (sha256_file(p), p.stat().st_mtime_ns) for p in export_dir.iterdir()}
    command = [DEPLOY, "build", "lenet5", "--int8", "--export-dir", str(export_dir), "--out-dir", str(engines)]
    code, stderr, staged = _signal_when_staged(command, engines, "build", signum)

    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL
        assert any(p.exists() for p in staged)
        swept = subprocess.run(
            [DEPLOY, "build", "lenet5", "--fp32", *command[4:]], cwd=tmp_path, capture_output=True, text=True
        )
        assert swept.returncode == 0, swept.stderr
        assert not any(p.exists() for p in staged)
        assert not list(engines.glob("*int8*"))
    else:
        assert code == EXITS[signum], stderr
        assert "Traceback" not in stderr
        assert [p.name for p in engines.iterdir()] == []
    assert {p.name: (sha256_file(p), p.stat().st_mtime_ns) for p in export_dir.iterdir()} == before


def _host_tag() -> str:
    from deploy.files import scratch_prefix

    return scratch_prefix("x").split(".")[2]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_a_signal_during_triton_leaves_the_repository_as_it_was(
    signum: int, resnet18_export: ExportResult, tmp_path: Path
) -> None:
    """resnet18's 45 MB copy gives the signal a window; lenet5's copy is over in milliseconds."""
    repo = tmp_path / "repo"
    command = [DEPLOY, "triton", str(resnet18_export.onnx_path), "--repo", str(repo)]
    code, stderr, staged = _signal_when_staged(command, tmp_path, "triton-model", signum)
    assert not repo.exists() or not [p for p in repo.iterdir() if not p.name.startswith(".deploy-tmp.")]
    if signum == signal.SIGKILL:
        assert any(p.exists() for p in staged)
        again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        assert (repo / "resnet18" / "1" / "model.onnx").is_file()
    else:
        assert code == EXITS[signum], stderr
    assert not list(tmp_path.rglob(".deploy-tmp.*"))
