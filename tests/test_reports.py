"""Reports: the report notebook executed headless by nbconvert gives a self-contained HTML page with
the final job summary and its chart, and no empty widget placeholder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_report_notebook_renders_the_final_summary_and_chart(tmp_path: Path) -> None:
    env = {**os.environ, "BATCHNB_WORKSPACE": str(tmp_path / "ws")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter",
            "nbconvert",
            "--to",
            "html",
            "--execute",
            str(NOTEBOOKS / "report.ipynb"),
            "--output-dir",
            str(tmp_path),
            "--output",
            "report",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    html = (tmp_path / "report.html").read_text()
    # The saved widget state (the widget, which became the summary too) is not what a reader sees.
    html = re.sub(r'<script type="application/vnd.jupyter.widget-state\+json">.*?</script>', "", html, flags=re.S)
    # The cell that showed the live widget was replaced by the summary when the job ended, and the
    # last cell shows it again: two summaries, each with its chart, both Completed.
    # (nbconvert rewrites the HTML, reordering attributes: match tags, not exact strings)
    assert len(re.findall(r"<div[^>]*batchnb-summary[^>]*>", html)) == 2
    assert len(re.findall(r"<svg[^>]*batchnb-chart[^>]*>", html)) == 2
    assert len(re.findall(r"<div[^>]*data-status=\"Completed\"[^>]*>", html)) == 2
    assert '<script type="application/vnd.jupyter.widget-view+json"' not in html
    assert "share flagged" in html  # the notebook's own table made it too
