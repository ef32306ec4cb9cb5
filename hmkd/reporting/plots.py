"""Every PNG chart of the project: a run's curves (loss terms, validation mIoU) and the report's comparisons.

Usage:
    plot_run(RunDir(run_dir))          # run_dir/plots/losses.png and val_miou.png, from metrics.jsonl
    report_charts(RunDir(out_dir), entries)    # miou.png and per_class_iou.png, from the results table's entries
    paired_chart("results/distill_quality.png", groups)   # the distillation benchmark: mIoU and paired differences
    term_chart(RunDir(out_dir), curves)        # loss_terms.png: the distilled stages' loss terms over training
"""
import io
import os
from typing import Any, Dict, List, Sequence

from hmkd.atomic import atomic_write_bytes
from hmkd.engine.logger import read_jsonl
from hmkd.rundir import RunDir


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> str:
    """Rendered in memory, then written atomically: a chart is whole, or a full disk is one clear error."""
    plt = _pyplot()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=os.path.splitext(path)[1][1:] or "png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _line_chart(path: str, series: Dict[str, List[Any]], ylabel: str, title: str, legend: bool = True,
                marker=None) -> str:
    """One line per series (name -> [(x, y), ...]) over the training step."""
    fig, ax = _pyplot().subplots(figsize=(7, 4))
    for name, points in series.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], label=name, marker=marker)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend:
        ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_run(run: RunDir) -> List[str]:
    """The run's curves from its metrics.jsonl; returns the files written."""
    rows = read_jsonl(run.metrics)
    os.makedirs(run.plots, exist_ok=True)
    written = []
    train = [r for r in rows if any(k.startswith("loss/") for k in r)]
    if train:
        keys = sorted({k for r in train for k in r if k.startswith("loss/")})
        series = {key[len("loss/"):]: [(r["step"], r[key]) for r in train if key in r] for key in keys}
        written.append(_line_chart(run.loss_curves, series, "loss", "training loss terms"))
    val = [r for r in rows if "val/mIoU" in r]
    if val:
        series = {"val": [(r["step"], 100 * r["val/mIoU"]) for r in val]}
        written.append(_line_chart(run.val_curve, series, "mIoU (%)", "validation mIoU", legend=False,
                                   marker="o"))
    return written


def _pct_or_nan(value: Any) -> float:
    """A fraction in percent; NaN (nothing drawn) for a stage with no score."""
    return float("nan") if value is None else 100 * value


def report_charts(report: RunDir, entries: Sequence[Dict[str, Any]]) -> List[str]:
    """mIoU per stage (error bars: std over seeds) and per-class IoU per stage."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = [e["label"] for e in entries]
    ax.bar(labels, [_pct_or_nan(e["mIoU"]) for e in entries], yerr=[100 * (e["mIoU_std"] or 0) for e in entries],
           capsize=4, color="#4c72b0")  # a stage with no compared run has no bar (NaN), not a bar at 0
    ax.set_ylabel("mIoU (%)")
    ax.set_title("mIoU by stage")
    ax.grid(axis="y", alpha=0.3)
    written = [_save(fig, report.miou_chart)]
    names = list(entries[0]["per_class_iou"]) if entries else []
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(names) * len(entries)), 4))
    width = 0.8 / max(len(entries), 1)
    for i, e in enumerate(entries):
        values = [100 * (e["per_class_iou"][n] or 0) for n in names]
        ax.bar([j + i * width for j in range(len(names))], values, width, label=e["label"])
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))])
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_ylabel("IoU (%)")
    ax.set_title("per-class IoU")
    ax.legend()
    written.append(_save(fig, report.per_class_chart))
    return written


def paired_chart(path: str, groups: Dict[str, List[Dict[str, Any]]]) -> str:
    """The distillation benchmark (hmkd.benchmarks.distill_quality): per group of methods, mIoU mean ± std over
    seeds, and each method's mean difference to the group's baseline paired by seed with its 95% interval; an
    interval across the dashed zero line is within noise."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(groups), 2, figsize=(10, 3.2 * len(groups)), squeeze=False)
    for (group, rows), (left, right) in zip(groups.items(), axes):
        labels = [r["label"] for r in rows]
        left.errorbar(range(len(rows)), [_pct_or_nan(r["mIoU_mean"]) for r in rows],
                      yerr=[100 * (r["mIoU_std"] or 0) for r in rows], fmt="o", capsize=4, color="#4c72b0")
        left.set_xticks(range(len(rows)))
        left.set_xticklabels(labels, rotation=30, ha="right")
        left.set_ylabel("mIoU (%)")
        left.set_title("%s: mIoU, mean ± std over seeds" % group)
        left.grid(axis="y", alpha=0.3)
        paired = [r for r in rows if r.get("diff_ci95")]
        for i, r in enumerate(paired):
            low, high = (100 * v for v in r["diff_ci95"])
            mean = 100 * r["diff_mean"]
            right.errorbar([i], [mean], yerr=[[mean - low], [high - mean]], fmt="o", capsize=4,
                           color="#999999" if r["within_noise"] else ("#55a868" if low > 0 else "#c44e52"))
        right.axhline(0.0, color="black", linestyle="--", linewidth=1)
        right.set_xticks(range(len(paired)))
        right.set_xticklabels([r["label"] for r in paired], rotation=30, ha="right")
        right.set_ylabel("mIoU difference (points)")
        baseline = paired[0]["baseline"] if paired else "baseline"
        right.set_title("%s: vs %s, paired, 95%% interval" % (group, baseline))
        right.grid(axis="y", alpha=0.3)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return _save(fig, path)


def term_chart(report: RunDir, curves: Dict[str, Dict[str, List[Any]]]) -> List[str]:
    """One panel per distilled stage (``curves``: stage -> term -> [(step, value)]), each term divided by its first
    logged window: terms of very different scales (ce near 1, a mean GLA relation difference near 1e-5) share
    one axis, and a line that stays near 1 is a term training does not reduce. Nothing without curves."""
    if not curves:
        return []
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.5), squeeze=False)
    for ax, (label, terms) in zip(axes[0], curves.items()):
        for name, points in terms.items():
            first = points[0][1]
            if first:
                ax.plot([p[0] for p in points], [p[1] / first for p in points], label=name)
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xlabel("step")
        ax.set_ylabel("loss / first window")
        ax.set_title(label)
        ax.legend()
        ax.grid(alpha=0.3)
    return [_save(fig, report.term_chart)]
