"""`deploy triton ARTIFACT... --repo DIR`: a Triton Inference Server model repository."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from deploy.cli.output import print_json, stdout


def triton(
    artifacts: list[str] = typer.Argument(..., help="Artifacts (.onnx/.plan/.xml with sidecars) or model names."),
    repo: Path = typer.Option(Path("model_repository"), "--repo", "-r", help="The model repository folder."),
    name: str | None = typer.Option(None, "--name", help="Triton model name (one artifact only)."),
    instances: int = typer.Option(1, "--instances", help="Model instances per device."),
    device: str | None = typer.Option(
        None, "--device", help="Instance kind: gpu (KIND_GPU) or cpu (KIND_CPU); default: where the artifact runs."
    ),
    max_queue_delay_us: int = typer.Option(100, "--max-queue-delay-us", help="Dynamic batching queue delay."),
    labels: bool = typer.Option(True, "--labels/--no-labels", help="Write labels.txt for classifier outputs."),
    force: bool = typer.Option(False, "--force", help="Write into a folder that holds other content."),
    export_dir: Path = typer.Option(Path("export"), "--export-dir", help="Where a model name's ONNX is found."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    """Write config.pbtxt and versioned model files Triton reads (ONNX Runtime, TensorRT or OpenVINO)."""
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
    )
    result = write_repository(config)
    if as_json:
        print_json(result)
        return
    table = Table(title=f"Triton model repository {result.repo}")
    for column in ("model", "version", "platform", "max_batch_size", "config"):
        table.add_column(column)
    for model in result.models:
        table.add_row(model.name, str(model.version), model.platform, str(model.max_batch_size), str(model.config_path))
    stdout.print(table)


def _artifact_path(item: str, export_dir: Path) -> Path:
    path = Path(item)
    from deploy.targets import artifact_suffixes

    if path.suffix in artifact_suffixes() or path.exists():
        return path
    from deploy.errors import BadInput
    from deploy.zoo import get_spec

    exported = export_dir / f"{get_spec(item).name}.onnx"
    if not exported.is_file():
        raise BadInput(f"{item} has no export at {exported}", hint=f"run `deploy export {item}` first")
    return exported
