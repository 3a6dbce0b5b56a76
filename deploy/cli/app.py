"""The Typer app, its global options, and the single place where library errors become exit codes."""

from __future__ import annotations

import os
import signal
import warnings
from types import FrameType
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from deploy import __version__
from deploy.cli import (
    bench_cmd,
    build_cmd,
    diagnose_cmd,
    doctor_cmd,
    export_cmd,
    import_cmd,
    infer_cmd,
    list_cmd,
    pipeline_cmd,
    report_cmd,
    samples_cmd,
    serve_cmd,
    triton_cmd,
    verify_cmd,
)
from deploy.cli.output import COMMAND, configure_logging, settings, stderr
from deploy.errors import DeployError

INTERNAL_ERROR_EXIT = 70  # EX_SOFTWARE: a bug in deploy, not in the user's input
INTERRUPTED_EXIT = 128 + signal.SIGINT


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler, `timeout`, `docker stop`) unwinds like Ctrl-C, so every staged file is removed."""

    exit_code = 128 + signal.SIGTERM


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


class DeployGroup(TyperGroup):
    """Runs every command inside the error boundary: one red line and the fix, never a traceback (unless --debug)."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            COMMAND.set(command.name or name or "deploy")  # what --json envelopes name
        return name, command, rest

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        debug = bool(ctx.params.get("debug")) or os.environ.get("DEPLOY_DEBUG") == "1"
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise
        except DeployError as exc:
            if debug:
                raise
            stderr.print(f"[bold red]error:[/bold red] {escape(exc.message)}", highlight=False)
            if exc.hint:
                stderr.print(f"[yellow]fix:[/yellow] {escape(exc.hint)}", highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:
            # `deploy list | head`: the reader left; nothing is wrong with deploy or the input.
            raise typer.Exit(0) from None
        except KeyboardInterrupt as exc:
            how = "terminated" if isinstance(exc, Terminated) else "interrupted"
            stderr.print(f"[red]{how}[/red]; nothing half-written was kept")
            raise typer.Exit(exc.exit_code if isinstance(exc, Terminated) else INTERRUPTED_EXIT) from None
        except Exception as exc:
            if debug:
                raise
            stderr.print(
                f"[bold red]internal error:[/bold red] {escape(f'{type(exc).__name__}: {exc}')}", highlight=False
            )
            stderr.print("[yellow]fix:[/yellow] rerun with --debug for the traceback and report it")
            raise typer.Exit(INTERNAL_ERROR_EXIT) from None


app = typer.Typer(
    cls=DeployGroup,
    name="deploy",
    help="Classic CNNs from PyTorch to verified, fast inference: export, simplify, check parity, run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"deploy {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress messages on stderr."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    state = settings(ctx)
    state.debug, state.quiet = debug, quiet
    configure_logging(debug)
    if not debug:
        # Exporter and library deprecation chatter is noise to a user; --debug shows it.
        warnings.simplefilter("ignore")


app.command("list")(list_cmd.list_models)
app.command("export")(export_cmd.export)
app.command("import")(import_cmd.import_onnx)
app.command("infer")(infer_cmd.infer)
app.command("samples")(samples_cmd.samples)
app.command("build")(build_cmd.build)
app.command("verify")(verify_cmd.verify)
app.command("diagnose")(diagnose_cmd.diagnose)
app.command("pipeline")(pipeline_cmd.pipeline)
app.command("triton")(triton_cmd.triton)
app.command("serve")(serve_cmd.serve)
app.command("doctor")(doctor_cmd.doctor)
app.command("bench")(bench_cmd.bench)
app.command("report")(report_cmd.report)


def main() -> None:
    signal.signal(signal.SIGTERM, _raise_terminated)
    app()
