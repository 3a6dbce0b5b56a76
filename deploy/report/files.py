"""Writing a report: report.json, report.md and report.png, published together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deploy.files import Staging, ensure_writable_dir
from deploy.report.markdown import report_markdown
from deploy.report.model import Report


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    json: Path
    png: Path | None


def write_report(report: Report, folder: Path, *, chart: bool = True) -> ReportFiles:
    """report.json, report.md and (with `chart`) report.png, all or nothing."""
    ensure_writable_dir(folder, option="--reports-dir")
    files = ReportFiles(folder / "report.md", folder / "report.json", folder / "report.png" if chart else None)
    with Staging() as staging:
        staging.path_for(files.json).write_text(report.to_json(), encoding="utf-8")
        if files.png is not None:
            from deploy.report.chart import render_chart  # matplotlib: imported only when a chart is drawn

            render_chart(report, staging.path_for(files.png))
        markdown = report_markdown(report, chart=files.png.name if files.png else None)
        staging.path_for(files.markdown).write_text(markdown, encoding="utf-8")
        staging.commit()
    return files
