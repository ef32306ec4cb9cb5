"""Why a distillation did or did not help: each distilled stage's loss-term curves, each term's share of the
student's gradient, and its teacher-student CKA.

Usage:
    diag = diagnostics(trained, distilled={"hmkd"})    # trained: (stage label, training RunDir) for every run
    diag["loss_terms"], diag["grad_shares"], diag["cka"], diag["curves"]; print(diagnostics_markdown(diag))

Read from each training run's own files: metrics.jsonl (the ``loss/<term>`` window means the trainer logs every
``train.log_interval`` steps, and the ``grad_share/<term>`` records of its diagnostic steps, hmkd.engine.grad_share)
and cka.json (hmkd.engine.cka_probe). Per stage, seeds are averaged: a term's first and last logged window, and its
ratio last / first of those means; a term's gradient share at the first and the last diagnostic step; the CKA at
each aligned stage at step 0 and after the last step, and the change (the mean over the seeds that have both). A stage without a teacher, or runs
without those files (an evaluation-only stage, a run from before the probe), simply add no row; a damaged cka.json
is a warning.
"""
import logging
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from hmkd.engine.cka_probe import read_cka
from hmkd.engine.grad_share import GRAD_SHARE, SWITCHED_OFF_SHARE
from hmkd.engine.logger import read_jsonl
from hmkd.rundir import RunDir

log = logging.getLogger(__name__)

LOSS_PREFIX = "loss/"
TOTAL = "total"


def _mean(values: Iterable[Optional[float]]) -> Optional[float]:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def prefixed_records(run: RunDir, prefix: str) -> List[Tuple[int, Dict[str, float]]]:
    """(step, {term: value}) for each metrics.jsonl line of the run holding ``prefix + term`` keys, in step order."""
    lines = [r for r in read_jsonl(run.metrics) if "step" in r and any(k.startswith(prefix) for k in r)]
    return [(r["step"], {k[len(prefix):]: r[k] for k in r if k.startswith(prefix)})
            for r in sorted(lines, key=lambda r: r["step"])]


def loss_windows(run: RunDir) -> List[Tuple[int, Dict[str, float]]]:
    """(step, {term: window mean}) for each logged training line of the run, in step order."""
    return prefixed_records(run, LOSS_PREFIX)


def _term_order(runs: Sequence[List[Tuple[int, Dict[str, float]]]]) -> List[str]:
    names = sorted({name for windows in runs for _, terms in windows for name in terms})
    return [n for n in names if n != TOTAL] + [n for n in names if n == TOTAL]


def term_rows(label: str, runs: Sequence[RunDir]) -> List[Dict[str, Any]]:
    """One row per loss term of the stage: seeds, first and last window (mean over seeds), last / first."""
    logged = [w for w in (loss_windows(run) for run in runs) if w]
    rows = []
    for name in _term_order(logged):
        having = [[terms[name] for _, terms in windows if name in terms] for windows in logged]
        having = [values for values in having if values]
        first, last = _mean(v[0] for v in having), _mean(v[-1] for v in having)
        rows.append({"stage": label, "term": name, "seeds": len(having), "first": first, "last": last,
                     "ratio": last / first if first else None})
    return rows


def term_curves(runs: Sequence[RunDir]) -> Dict[str, List[Tuple[int, float]]]:
    """{term: [(step, mean over the seeds that logged the step)]}: what the report's loss_terms.png draws."""
    logged = [loss_windows(run) for run in runs]
    curves = {}
    for name in _term_order(logged):
        by_step: Dict[int, List[float]] = {}
        for windows in logged:
            for step, terms in windows:
                if name in terms:
                    by_step.setdefault(step, []).append(terms[name])
        curves[name] = [(step, sum(v) / len(v)) for step, v in sorted(by_step.items())]
    return curves



def share_rows(label: str, runs: Sequence[RunDir]) -> List[Dict[str, Any]]:
    """One row per loss term of the stage: seeds, its share of the student's gradient at the first and the last
    diagnostic step (mean over seeds, with those steps), and whether it was switched off by its scale there."""
    recorded = [r for r in (prefixed_records(run, GRAD_SHARE) for run in runs) if r]
    rows = []
    for name in _term_order(recorded):
        having = [[(step, shares[name]) for step, shares in records if name in shares] for records in recorded]
        having = [values for values in having if values]
        first, last = _mean(v[0][1] for v in having), _mean(v[-1][1] for v in having)
        rows.append({"stage": label, "term": name, "seeds": len(having), "first_step": having[0][0][0],
                     "last_step": having[0][-1][0], "first": first, "last": last,
                     "switched_off": last is not None and last < SWITCHED_OFF_SHARE})
    return rows


def _cka_record(run: RunDir) -> Optional[Dict[str, Any]]:
    """A damaged cka.json costs its rows (with a warning), never the report."""
    try:
        return read_cka(run.cka)
    except ValueError as exc:
        log.warning("%s; its CKA rows are left out", exc)
        return None


def cka_rows(label: str, runs: Sequence[RunDir]) -> List[Dict[str, Any]]:
    """One row per aligned feature stage: seeds, start and end CKA (mean over seeds), change."""
    records = [r for r in (_cka_record(run) for run in runs) if r]
    stages: Dict[str, List[str]] = {}
    for record in records:
        for key, names in (record.get("stages") or {}).items():
            stages.setdefault(key, list(names))
    rows = []
    for key in sorted(stages, key=lambda k: int(k[len("stage"):]) if k[len("stage"):].isdigit() else 0):
        start = [(r.get("start") or {}).get(key) for r in records]
        end = [(r.get("end") or {}).get(key) for r in records]
        rows.append({"stage": label, "feature_stage": key, "terms": stages[key],
                     "seeds": sum(1 for s, e in zip(start, end) if s is not None or e is not None),
                     "images": records[0].get("images"), "start": _mean(start), "end": _mean(end),
                     "change": _mean(e - s for s, e in zip(start, end) if s is not None and e is not None)})
    return rows


def diagnostics(trained: Sequence[Tuple[str, RunDir]], distilled: Iterable[str]) -> Dict[str, Any]:
    """The loss-term and CKA rows of the ``distilled`` stages among ``trained`` (label, training run) pairs, and
    their term curves, stages in first-seen order."""
    distilled = set(distilled)
    groups: Dict[str, List[RunDir]] = {}
    for label, run in trained:
        if label in distilled:
            groups.setdefault(label, []).append(run)
    out: Dict[str, Any] = {"loss_terms": [], "grad_shares": [], "cka": [], "curves": {}}
    for label, runs in groups.items():
        out["loss_terms"] += term_rows(label, runs)
        out["grad_shares"] += share_rows(label, runs)
        out["cka"] += cka_rows(label, runs)
        curves = term_curves(runs)
        if curves:
            out["curves"][label] = curves
    return out


def _number(value: Optional[float], form: str) -> str:
    return "-" if value is None else form % value


def _percent(share: Optional[float]) -> str:
    return "-" if share is None else "%.3g%%" % (100 * share)


def diagnostics_markdown(diag: Dict[str, Any]) -> str:
    """The tables as Markdown; '' when no distilled stage left the files."""
    lines: List[str] = []
    if diag["loss_terms"]:
        lines += ["Loss terms of the distilled stages: the first and the last logged window (mean over seeds) and "
                  "last / first (a term that does not fall is not being met; curves in loss_terms.png):", "",
                  "| stage | term | seeds | first | last | last / first |", "| --- | --- | ---: | ---: | ---: | ---: |"]
        for r in diag["loss_terms"]:
            lines.append("| %s | %s | %d | %s | %s | %s |" % (r["stage"], r["term"], r["seeds"],
                                                            _number(r["first"], "%.4g"), _number(r["last"], "%.4g"),
                                                            _number(r["ratio"], "%.3f")))
    if diag.get("grad_shares"):
        lines += [""] if lines else []
        lines += ["Each term's share of the student's gradient norm (sum of all terms' norms = 1) at the first and "
                  "the last diagnostic step (mean over seeds); a term under %g%% is present but switched off by its "
                  "scale:" % (100 * SWITCHED_OFF_SHARE), "",
                  "| stage | term | seeds | first (step) | last (step) | switched off |",
                  "| --- | --- | ---: | ---: | ---: | --- |"]
        for r in diag["grad_shares"]:
            lines.append("| %s | %s | %d | %s (%d) | %s (%d) | %s |" % (
                r["stage"], r["term"], r["seeds"], _percent(r["first"]), r["first_step"], _percent(r["last"]),
                r["last_step"], "yes" if r["switched_off"] else "no"))
    if diag["cka"]:
        lines += [""] if lines else []
        lines += ["Teacher-student linear CKA at the aligned feature stages on the first validation images, at step "
                  "0 and after the last step (mean over seeds; a CKA that does not rise: the student's features did "
                  "not move towards the teacher's):", "",
                  "| stage | feature stage | terms | seeds | images | start | end | change |",
                  "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for r in diag["cka"]:
            lines.append("| %s | %s | %s | %d | %s | %s | %s | %s |" % (
                r["stage"], r["feature_stage"], "+".join(r["terms"]), r["seeds"], _number(r["images"], "%d"),
                _number(r["start"], "%.3f"),
                _number(r["end"], "%.3f"), _number(r["change"], "%+.3f")))
    return "\n".join(lines)
