"""`deploy triton ARTIFACT... --repo DIR`: a Triton Inference Server model repository."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from deploy.cli.output import print_json, stdout


def triton(
    artifacts: list[str] = typer.Argument(..., help="Artifacts (.onnx/.plan/.xml with sidecars) or model names."),
    repo: Path = typer.Option(Path("model_repository"), "--repo", "-r", help="The model repository folder."),
    name: str | None = typer.Option(
        None, "--name", help="Triton model name (one artifact only; letters, digits, _, . and -)."
    ),
    instances: int = typer.Option(1, "--instances", help="Model instances per device."),
    device: str | None = typer.Option(
        None, "--device", help="Instance kind: gpu (KIND_GPU) or cpu (KIND_CPU); default: where the artifact runs."
    ),
    max_queue_delay_us: int = typer.Option(100, "--max-queue-delay-us", help="Dynamic batching queue delay."),
    labels: bool = typer.Option(True, "--labels/--no-labels", help="Write labels.txt for classifier outputs."),
    force: bool = typer.Option(False, "--force", help="Write into a folder that holds other content."),
    backend: str = typer.Option(
        "native",
        "--backend",
        help="native: the artifact's own Triton backend (ONNX Runtime, TensorRT, OpenVINO); python: Triton's Python "
        "backend running the ONNX with ONNX Runtime on the CPU (model <name>_python), for servers without those.",
    ),
    ensemble: bool = typer.Option(
        False,
        "--ensemble",
        help="Also write <model>_preprocess, <model>_topk and <model>_ensemble: clients send encoded image bytes "
        "(BYTES input IMAGE) and receive LABELS, PROBABILITIES and CLASS_INDICES.",
    ),
    top_k: int = typer.Option(5, "--top-k", help="Labels per image from the --ensemble."),
    threads: int = typer.Option(
        0, "--threads", help="ONNX Runtime threads per instance of a --backend python model (0: one per core)."
    ),
    export_dir: Path = typer.Option(Path("export"), "--export-dir", help="Where a model name's ONNX is found."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    """Write config.pbtxt and versioned model files Triton reads (ONNX Runtime, TensorRT, OpenVINO or Python)."""
    from deploy.errors import BadInput
    from deploy.serving.triton import TritonConfig, write_repository

    if device not in (None, "gpu", "cpu"):
        raise BadInput(f"--device {device!r} is unknown", hint="choose gpu or cpu")
    paths = tuple(_artifact_path(item, export_dir) for item in artifacts)
    config = TritonConfig(
        artifacts=paths,
        repo=repo,
        name=name,
        instances=instances,
        device=device,  # type: ignore[arg-type]
        max_queue_delay_us=max_queue_delay_us,
        labels=labels,
        force=force,
        backend=backend,  # type: ignore[arg-type]
        ensemble=ensemble,
        top_k=top_k,
        intra_op_threads=threads,
    )
    result = write_repository(config)
    if as_json:
        print_json(result)
        return
    table = Table(title=f"Triton model repository {escape(str(result.repo))}")
    for column in ("model", "version", "status", "platform", "max_batch_size", "config"):
        # the model name identifies the row (lenet5_python_topk vs _preprocess): never cut; the path folds instead
        table.add_column(column, no_wrap=column == "model", overflow="fold" if column == "config" else "ellipsis")
    for model in result.models:
        row = (model.name, str(model.version), model.status, model.platform, str(model.max_batch_size))
        table.add_row(*map(escape, (*row, str(model.config_path))))
    stdout.print(table)
    for model in result.models:
        if model.status != "added":
            stdout.print(f"{model.name}: {_SAME[model.status].format(model.version)}", highlight=False, markup=False)


_SAME = {
    "reconfigured": "the artifact is version {} already; no new version, config.pbtxt or labels.txt updated",
    "unchanged": "the artifact is version {} already and the config is the same; nothing written",
}


def _artifact_path(item: str, export_dir: Path) -> Path:
    """A file as it is (an ONNX without a sidecar refused with the `deploy import` command); a name as its export:
    `export_dir/NAME.onnx` when it exists (an imported model), else the zoo's spelling of the name."""
    from deploy.imported import exported_onnx, require_sidecar
    from deploy.targets import artifact_suffixes

    path = Path(item)
    if path.suffix in artifact_suffixes() or path.exists():
        if path.suffix == ".onnx" and path.is_file():
            require_sidecar(path, check_hash=False)
        return path
    found = exported_onnx(item, export_dir)
    if found is not None:
        require_sidecar(found, check_hash=False)
        return found
    from deploy.errors import BadInput
    from deploy.zoo import get_spec

    exported = export_dir / f"{get_spec(item).name}.onnx"
    if not exported.is_file():
        raise BadInput(f"{item} has no export at {exported}", hint=f"run `deploy export {item}` first")
    return exported
