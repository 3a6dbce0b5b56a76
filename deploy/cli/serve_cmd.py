"""`deploy serve REPO`: a Triton Inference Server on a model repository, until Ctrl-C (or `--check`: once ready)."""

from __future__ import annotations

from pathlib import Path

import typer

from deploy.cli.output import print_json, stderr, stdout


def serve(
    repo: Path = typer.Argument(Path("model_repository"), help="The model repository (written by deploy triton)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    http_port: int = typer.Option(8000, "--http-port", help="HTTP/REST port."),
    grpc_port: int = typer.Option(8001, "--grpc-port", help="gRPC port."),
    metrics_port: int | None = typer.Option(None, "--metrics-port", help="Prometheus metrics port (default: off)."),
    server: Path | None = typer.Option(
        None,
        "--server",
        help="A tritonserver binary or the folder holding one (default: $DEPLOY_TRITONSERVER, PATH, "
        "./.cache/tritonserver).",
    ),
    python: Path | None = typer.Option(
        None, "--python", help="Python for the Python backend's models (numpy<2, Pillow, onnxruntime)."
    ),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait for every model to be ready."),
    log_file: Path | None = typer.Option(None, "--log", help="The server's log file (default: in the temp folder)."),
    check: bool = typer.Option(False, "--check", help="Stop once every model is ready (a load test of the repo)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    """Start Triton on the repository, wait until every model is ready, print the endpoints."""
    from deploy.errors import DeployError
    from deploy.serving.server import ServeConfig, start_server

    config = ServeConfig(
        repo=repo,
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        server=server,
        python=python,
        ready_timeout_s=timeout,
        log_file=log_file,
    )
    with start_server(config, progress=lambda line: stderr.print(f"[dim]{line}[/dim]", highlight=False)) as running:
        started = running.started
        if as_json:
            print_json(started)
        else:
            endpoints = started.endpoints
            stdout.print(f"HTTP  {endpoints.http}", highlight=False, markup=False)
            stdout.print(f"gRPC  {endpoints.grpc}", highlight=False, markup=False)
            if endpoints.metrics:
                stdout.print(f"metrics  {endpoints.metrics}", highlight=False, markup=False)
            for model in started.models:
                stdout.print(f"model  {model.name} v{model.version} {model.state}", highlight=False, markup=False)
            stderr.print(
                f"[dim]ready in {started.seconds_to_ready:.1f} s (pid {started.pid}, {started.source}: "
                f"{started.binary}); log {started.log_file}[/dim]",
                highlight=False,
            )
        if check:
            return
        stderr.print("[dim]serving; Ctrl-C stops the server[/dim]")
        code = running.wait()
    raise DeployError(
        f"tritonserver stopped by itself with exit code {code}",
        hint=f"read {started.log_file}, then run deploy serve {repo} again",
    )
