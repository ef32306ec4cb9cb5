"""The pipeline's comparison report: the results table as Markdown and JSON, and its charts.

Usage: write_report(RunDir(out_dir), rows)    # rows: (stage label, EvalRecord) per evaluated run
"""
import json
import os
from typing import Any, Dict, Optional, Sequence

from hmkd.atomic import atomic_write_text
from hmkd.reporting.plots import report_charts
from hmkd.reporting.results import Row, aggregate, flops_note, markdown
from hmkd.rundir import RunDir


def write_report(report: RunDir, rows: Sequence[Row], baseline: Optional[str] = None) -> Dict[str, Any]:
    """report.md, report.json (entries and every run's record) and the charts; returns entries and the text."""
    entries = aggregate(rows, baseline)
    text = "# Results\n\n%s\n\n%s\n" % (flops_note(entries), markdown(entries))
    os.makedirs(report.path, exist_ok=True)
    atomic_write_text(report.report_md, text)
    runs = [dict(record.to_dict(), label=label) for label, record in rows]
    atomic_write_text(report.report_json, json.dumps({"entries": entries, "runs": runs}, indent=2,
                                                     allow_nan=False) + "\n")
    report_charts(report, entries)
    return {"entries": entries, "markdown": text}
