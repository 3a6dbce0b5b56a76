"""`deploy triton` is all or nothing, refuses unusable names, writes only valid pbtxt, and does not repeat itself."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2
from typer.testing import CliRunner

import deploy.serving.triton as triton
from deploy.cli import app
from deploy.errors import ArtifactError, BadInput, OutputNotWritable
from deploy.exporter import ExportResult
from deploy.files import scratch_prefix, sha256_file
from deploy.serving.triton import TritonConfig, pbtxt_string, write_repository
from deploy.sidecar import FileDigest, TargetInfo, load_sidecar, sidecar_path

SCRATCH = ".deploy-tmp"


def parse_config(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def snapshot(repo: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under `repo`, hidden ones included: files by mode, mtime and content; plus any work folder
    left beside the repository."""
    state: dict[str, tuple[object, ...]] = {}
    if not repo.exists():
        return state
    for root, dirs, files in os.walk(repo):
        for name in dirs:
            state[os.path.relpath(Path(root, name), repo)] = ("dir",)
        for name in files:
            path = Path(root, name)
            info = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            state[os.path.relpath(path, repo)] = (info.st_mode, info.st_mtime_ns, digest)
    for entry in repo.parent.iterdir():
        if entry.name.startswith(SCRATCH):
            state[f"../{entry.name}"] = ("left beside the repository",)
    return state


def visible_to_triton(repo: Path) -> set[str]:
    """What Triton reads: every folder in the repository (hidden ones too), and in each, its files and its
    numbered version folders with their contents (other subfolders are skipped)."""
    seen = set()
    for model in repo.iterdir():
        seen.add(model.name)
        for entry in model.iterdir() if model.is_dir() else ():
            if entry.is_file():
                seen.add(f"{model.name}/{entry.name}")
            elif entry.name.isdigit():
                seen.update(f"{model.name}/{entry.name}/{f.name}" for f in entry.iterdir())
    return seen


def copied(source: Path, folder: Path, stem: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.onnx"
    shutil.copy(source, path)
    shutil.copy(sidecar_path(source), sidecar_path(path))
    return path


def rebuilt(source: Path, folder: Path, stem: str) -> Path:
    """The same network saved again with another doc string: another build (another sha256), its own sidecar."""
    folder.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(source))
    model.doc_string = f"rebuilt as {folder.name}/{stem}"
    path = folder / f"{stem}.onnx"
    onnx.save(model, str(path))
    sidecar = dataclasses.replace(
        load_sidecar(source), artifact=path.name, sha256=sha256_file(path), size_bytes=path.stat().st_size
    )
    sidecar_path(path).write_text(sidecar.to_json())
    return path


def ir_standing_in(source: Path, folder: Path) -> Path:
    """Test double: an OpenVINO IR (.xml + .bin) with a sidecar listing the .bin. `deploy triton` reads only the
    sidecar and the hashes, so the bytes need not be a real IR."""
    folder.mkdir(parents=True, exist_ok=True)
    xml, weights = folder / "lenet5_ir.xml", folder / "lenet5_ir.bin"
    xml.write_bytes(b"<net name='stand-in'/>")
    weights.write_bytes(bytes(range(256)))
    target = TargetInfo(
        name="openvino",
        version="stand-in",
        source_onnx=source.name,
        source_sha256=sha256_file(source),
        seconds=0.0,
        companions=(FileDigest(weights.name, sha256_file(weights), weights.stat().st_size),),
    )
    base = load_sidecar(source)
    sidecar = dataclasses.replace(
        base,
        artifact=xml.name,
        sha256=sha256_file(xml),
        size_bytes=xml.stat().st_size,
        target=target,
        label=dataclasses.replace(base.label, target="openvino"),
    )
    sidecar_path(xml).write_text(sidecar.to_json())
    return xml


# Each fault makes the last artifact of a call unusable, and says which extra options the call takes.
Fault = Callable[[Path, Path], tuple[Path, list[str]]]


def tampered_companion(onnx_path: Path, folder: Path) -> tuple[Path, list[str]]:
    xml = ir_standing_in(onnx_path, folder)
    xml.with_suffix(".bin").write_bytes(b"tampered")
    return xml, []


def missing_companion(onnx_path: Path, folder: Path) -> tuple[Path, list[str]]:
    xml = ir_standing_in(onnx_path, folder)
    xml.with_suffix(".bin").unlink()
    return xml, []


def missing_sidecar(onnx_path: Path, folder: Path) -> tuple[Path, list[str]]:
    xml = ir_standing_in(onnx_path, folder)
    sidecar_path(xml).unlink()
    return xml, []


def truncated_sidecar(onnx_path: Path, folder: Path) -> tuple[Path, list[str]]:
    xml = ir_standing_in(onnx_path, folder)
    sidecar_path(xml).write_text(sidecar_path(xml).read_text()[:100])
    return xml, []


def plan_on_cpu(onnx_path: Path, folder: Path) -> tuple[Path, list[str]]:
    """Fine alone, refused with this call's --device cpu (TensorRT runs on GPUs only), which the ONNX take."""
    folder.mkdir(parents=True, exist_ok=True)
    plan = folder / "lenet5_int8.plan"
    plan.write_bytes(b"stand-in bytes: config generation never deserialises the engine")
    sidecar = dataclasses.replace(load_sidecar(onnx_path), artifact=plan.name, sha256=sha256_file(plan))
    sidecar_path(plan).write_text(sidecar.to_json())
    return plan, ["--device", "cpu"]


def symbolic_output(onnx_path: Path, folder: Path) -> tuple[Path, list[str]]:
    """A sidecar that reads well but describes an output Triton cannot be configured for."""
    path = copied(onnx_path, folder, "symbolic")
    sidecar = load_sidecar(path)
    outputs = (dataclasses.replace(sidecar.outputs[0], shape=("batch", "classes")),)
    sidecar_path(path).write_text(dataclasses.replace(sidecar, outputs=outputs).to_json())
    return path, []


@pytest.fixture()
def repo_with_lenet5(lenet5_export: ExportResult, tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    write_repository(TritonConfig(artifacts=(lenet5_export.onnx_path,), repo=repo))
    return repo


@pytest.mark.parametrize(
    "fault",
    [tampered_companion, missing_companion, missing_sidecar, truncated_sidecar, plan_on_cpu, symbolic_output],
    ids=lambda f: f.__name__,
)
def test_one_bad_artifact_among_several_leaves_the_repository_exactly_as_it_was(
    cli: CliRunner, lenet5_export: ExportResult, repo_with_lenet5: Path, tmp_path: Path, fault: Fault
) -> None:
    new_build = rebuilt(lenet5_export.onnx_path, tmp_path / "build2", "lenet5")  # would be lenet5 version 2
    new_model = copied(lenet5_export.onnx_path, tmp_path / "other", "digits")  # would be a new model folder
    bad, options = fault(lenet5_export.onnx_path, tmp_path / "bad")
    before = snapshot(repo_with_lenet5)
    arguments = ["triton", str(new_build), str(new_model), str(bad), "--repo", str(repo_with_lenet5), *options]
    result = cli.invoke(app, arguments)
    assert result.exit_code == BadInput.exit_code, result.output
    assert "Traceback" not in result.output and bad.stem in result.output
    assert snapshot(repo_with_lenet5) == before


def test_the_same_artifacts_all_good_are_all_added(
    lenet5_export: ExportResult, repo_with_lenet5: Path, tmp_path: Path
) -> None:
    """The positive twin of the test above: the same call without the fault writes all three."""
    new_build = rebuilt(lenet5_export.onnx_path, tmp_path / "build2", "lenet5")
    new_model = copied(lenet5_export.onnx_path, tmp_path / "other", "digits")
    ir = ir_standing_in(lenet5_export.onnx_path, tmp_path / "ir")
    result = write_repository(TritonConfig(artifacts=(new_build, new_model, ir), repo=repo_with_lenet5, device="cpu"))
    assert [(m.name, m.version, m.status) for m in result.models] == [
        ("lenet5", 2, "added"),
        ("digits", 1, "added"),
        ("lenet5_ir", 1, "added"),
    ]
    assert (repo_with_lenet5 / "lenet5_ir" / "1" / "model.bin").read_bytes() == bytes(range(256))
    assert parse_config(repo_with_lenet5 / "lenet5_ir" / "config.pbtxt").backend == "openvino"
    assert not [p for p in repo_with_lenet5.rglob(f"{SCRATCH}*")]
    assert not [p for p in repo_with_lenet5.parent.iterdir() if p.name.startswith(SCRATCH)]


def test_a_failure_while_moving_into_place_takes_back_what_was_moved(
    lenet5_export: ExportResult, repo_with_lenet5: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_build = rebuilt(lenet5_export.onnx_path, tmp_path / "build2", "lenet5")
    new_model = copied(lenet5_export.onnx_path, tmp_path / "other", "digits")
    before = snapshot(repo_with_lenet5)
    rename = os.rename

    def failing_rename(source: str | os.PathLike[str], destination: str | os.PathLike[str]) -> None:
        if Path(destination) == repo_with_lenet5 / "digits":  # the last move, after lenet5/2 is in place
            assert (repo_with_lenet5 / "lenet5" / "2" / "model.onnx").is_file()
            raise OSError(28, "No space left on device", str(destination))
        rename(source, destination)

    monkeypatch.setattr(triton.os, "rename", failing_rename)
    with pytest.raises(OutputNotWritable, match="left as it was"):
        write_repository(
            TritonConfig(artifacts=(new_build, new_model), repo=repo_with_lenet5, instances=3, labels=False)
        )
    assert snapshot(repo_with_lenet5) == before


def test_nothing_half_made_is_visible_to_triton_while_files_are_copied(
    lenet5_export: ExportResult, repo_with_lenet5: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What Triton could see at the moment a killed process would stop mid-copy: exactly what was there before."""
    new_build = rebuilt(lenet5_export.onnx_path, tmp_path / "build2", "lenet5")
    new_model = copied(lenet5_export.onnx_path, tmp_path / "other", "digits")
    before = visible_to_triton(repo_with_lenet5)
    seen_while_copying = []
    copy = triton._copy_version

    def watched_copy(plan: triton._Plan, version: Path) -> None:
        copy(plan, version)
        seen_while_copying.append(visible_to_triton(repo_with_lenet5))

    monkeypatch.setattr(triton, "_copy_version", watched_copy)
    write_repository(TritonConfig(artifacts=(new_build, new_model), repo=repo_with_lenet5))
    assert seen_while_copying == [before, before]
    assert visible_to_triton(repo_with_lenet5) >= before | {"digits", "lenet5/2/model.onnx"}


def test_work_folders_of_a_killed_run_are_swept_by_the_next(
    lenet5_export: ExportResult, repo_with_lenet5: Path, tmp_path: Path
) -> None:
    dead = f".{os.getpid()}."
    left = [
        repo_with_lenet5.parent / scratch_prefix("triton-model").replace(dead, ".2147483647.", 1),
        repo_with_lenet5 / "lenet5" / scratch_prefix("triton-version").replace(dead, ".2147483647.", 1),
    ]
    for folder in left:
        (folder / "1").mkdir(parents=True)
        (folder / "1" / "model.onnx").write_bytes(b"half a model")
    new_build = rebuilt(lenet5_export.onnx_path, tmp_path / "build2", "lenet5")
    new_model = copied(lenet5_export.onnx_path, tmp_path / "other", "digits")
    write_repository(TritonConfig(artifacts=(new_build, new_model), repo=repo_with_lenet5))
    assert not [folder for folder in left if folder.exists()]


@pytest.mark.parametrize("name", ['we"ird', "a/b", "a b", "tab\there", ".hidden", "-dash", "a..b", "ü", "", "x" * 129])
def test_an_unusable_name_option_is_refused_before_anything_is_written(
    cli: CliRunner, lenet5_export: ExportResult, tmp_path: Path, name: str
) -> None:
    repo = tmp_path / "repo"
    result = cli.invoke(app, ["triton", str(lenet5_export.onnx_path), "--repo", str(repo), "--name", name])
    assert result.exit_code == BadInput.exit_code, result.output
    assert "--name" in result.output and "not a usable Triton model name" in result.output
    assert "lenet5.onnx" in result.output
    assert not repo.exists()


def test_an_unusable_name_from_a_file_name_is_refused_and_the_hint_offers_both_fixes(
    cli: CliRunner, lenet5_export: ExportResult, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    good = copied(lenet5_export.onnx_path, tmp_path / "a", "fine")
    odd = copied(lenet5_export.onnx_path, tmp_path / "b", 'we"ird')
    result = cli.invoke(app, ["triton", str(good), str(odd), "--repo", str(repo)])
    assert result.exit_code == BadInput.exit_code, result.output
    assert 'we"ird.onnx' in result.output and "rename the file" in result.output and "--name" in result.output
    assert not repo.exists()
    accepted = cli.invoke(app, ["triton", str(odd), "--repo", str(repo), "--name", "weird.v2-final"])
    assert accepted.exit_code == 0, accepted.output
    assert parse_config(repo / "weird.v2-final" / "config.pbtxt").name == "weird.v2-final"


@pytest.mark.parametrize("text", ['we"ird', "back\\slash", "new\nline", "tab\t", "Ünïcode ✓", "\x00\x7f", "\\x41"])
def test_pbtxt_strings_read_back_as_exactly_the_text(text: str) -> None:
    parsed = text_format.Parse(f"name: {pbtxt_string(text)}", model_config_pb2.ModelConfig())
    assert parsed.name == text


def test_crafted_tensor_names_cannot_break_out_of_config_pbtxt(lenet5_export: ExportResult, tmp_path: Path) -> None:
    onnx_path = copied(lenet5_export.onnx_path, tmp_path / "crafted", "crafted")
    sidecar = load_sidecar(onnx_path)
    crafted = dataclasses.replace(
        sidecar,
        inputs=(dataclasses.replace(sidecar.inputs[0], name='in"\n  name: "evil'),),
        outputs=(dataclasses.replace(sidecar.outputs[0], name="out\\"),),
    )
    sidecar_path(onnx_path).write_text(crafted.to_json())
    result = write_repository(TritonConfig(artifacts=(onnx_path,), repo=tmp_path / "repo"))
    config = parse_config(result.models[0].config_path)
    assert [i.name for i in config.input] == ['in"\n  name: "evil']
    assert [o.name for o in config.output] == ["out\\"]


def test_a_label_spanning_two_lines_is_refused(cli: CliRunner, lenet5_export: ExportResult, tmp_path: Path) -> None:
    onnx_path = copied(lenet5_export.onnx_path, tmp_path / "crafted", "crafted")
    sidecar = load_sidecar(onnx_path)
    labels = ("zero\none", *(sidecar.labels or ())[1:])
    sidecar_path(onnx_path).write_text(dataclasses.replace(sidecar, labels=labels).to_json())
    repo = tmp_path / "repo"
    result = cli.invoke(app, ["triton", str(onnx_path), "--repo", str(repo)])
    assert result.exit_code == ArtifactError.exit_code and "one line" in result.output, result.output
    assert not repo.exists()
    assert cli.invoke(app, ["triton", str(onnx_path), "--repo", str(repo), "--no-labels"]).exit_code == 0


def test_rerunning_with_the_same_artifact_adds_no_version(
    cli: CliRunner, lenet5_export: ExportResult, repo_with_lenet5: Path, tmp_path: Path
) -> None:
    before = snapshot(repo_with_lenet5)
    again = cli.invoke(app, ["triton", str(lenet5_export.onnx_path), "--repo", str(repo_with_lenet5)])
    assert again.exit_code == 0, again.output
    assert "nothing written" in again.output
    assert snapshot(repo_with_lenet5) == before  # not even a work folder came and went

    (model,) = write_repository(
        TritonConfig(artifacts=(lenet5_export.onnx_path,), repo=repo_with_lenet5, instances=2)
    ).models
    assert (model.version, model.status) == (1, "reconfigured")
    assert parse_config(model.config_path).instance_group[0].count == 2
    assert sorted(p.name for p in (repo_with_lenet5 / "lenet5").iterdir()) == ["1", "config.pbtxt", "labels.txt"]

    new_build = rebuilt(lenet5_export.onnx_path, tmp_path / "build2", "lenet5")
    assert write_repository(TritonConfig(artifacts=(new_build,), repo=repo_with_lenet5)).models[0].version == 2
    # going back to the first build is a new newest version, not a no-op: only the newest version is compared
    (back,) = write_repository(TritonConfig(artifacts=(lenet5_export.onnx_path,), repo=repo_with_lenet5)).models
    assert (back.version, back.status) == (3, "added")
