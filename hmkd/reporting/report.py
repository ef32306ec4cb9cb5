"""The pipeline's comparison report: the results table as Markdown and JSON, and its charts.

Usage: write_report(RunDir(out_dir), rows, trained=trained)
       # rows: (stage label, EvalRecord[, run directory]) per evaluated run; trained: (stage label, training RunDir)
       # per run, whose metrics.jsonl and cka.json give the distilled stages' diagnostics (hmkd.reporting.diagnostics)
"""
import json
import math
import os
from typing import Any, Dict, Optional, Sequence, Tuple

from hmkd.atomic import atomic_write_text
from hmkd.reporting.diagnostics import diagnostics, diagnostics_markdown
from hmkd.reporting.plots import report_charts, term_chart
from hmkd.reporting.results import Row, aggregate, flops_note, markdown
from hmkd.rundir import RunDir


def write_report(report: RunDir, rows: Sequence[Row], baseline: Optional[str] = None,
                 trained: Sequence[Tuple[str, RunDir]] = ()) -> Dict[str, Any]:
    """report.md, report.json (entries, every run's record, the diagnostics) and the charts; returns entries, the
    diagnostics and the text."""
    entries = aggregate(rows, baseline)
    diag = diagnostics(trained, [e["label"] for e in entries if e["teacher"]])
    text = "# Results\n\n%s\n\n%s\n" % (flops_note(entries), markdown(entries))
    extra = diagnostics_markdown(diag)
    if extra:
        text += "\n## Distillation diagnostics\n\n%s\n" % extra
    os.makedirs(report.path, exist_ok=True)
    atomic_write_text(report.report_md, text)
    runs = [dict(row[1].to_dict(), label=row[0], run=row[2] if len(row) > 2 else None) for row in rows]
    saved = {"loss_terms": diag["loss_terms"], "grad_shares": diag["grad_shares"], "cka": diag["cka"]}
    atomic_write_text(report.report_json, json.dumps(_strict({"entries": entries, "runs": runs, "diagnostics": saved}),
                                                     indent=2, allow_nan=False) + "\n")
    report_charts(report, entries)
    term_chart(report, diag["curves"])
    return {"entries": entries, "diagnostics": diag, "markdown": text}


def _strict(value: Any) -> Any:
    """``value`` with every non-finite float as None (JSON's null): a record held in memory may carry a NaN score,
    which strict JSON cannot hold and a reader must not take for a number."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value
