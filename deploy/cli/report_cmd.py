"""`deploy report [MODEL...] [--all]`: Markdown and PNG rebuilt from report.json, without measuring again."""

from __future__ import annotations

from pathlib import Path

import typer

from deploy.cli.output import print_json, stdout


def report(
    models: list[str] = typer.Argument(None, help="Models whose reports to rebuild (reports/<model>/report.json)."),
    every: bool = typer.Option(False, "--all", help="Rebuild every report and write reports/index.md."),
    reports_dir: Path = typer.Option(Path("reports"), "--reports-dir", help="Where the reports are."),
    chart: bool = typer.Option(True, "--chart/--no-chart", help="Render report.png with matplotlib."),
    as_json: bool = typer.Option(False, "--json", help="Written paths as JSON on stdout."),
) -> None:
    """Re-render report.md/report.png from report.json; --all also indexes every model's report."""
    from deploy.report.index import render_reports

    result = render_reports(reports_dir, tuple(models or ()), every=every, chart=chart)
    if as_json:
        print_json(result)
        return
    for files in result.reports:
        stdout.print("\n".join(str(p) for p in (files.markdown, files.png) if p is not None), highlight=False)
    if result.index is not None:
        stdout.print(str(result.index), highlight=False)
