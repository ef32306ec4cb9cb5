"""PNG curves of a run from its metrics.jsonl: each loss term and validation mIoU over steps.

Usage: plot_run(run_dir)   # writes run_dir/plots/losses.png and run_dir/plots/val_miou.png
"""
import os
from typing import List

from hmkd.engine.logger import read_jsonl


def plot_run(run_dir: str) -> List[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_jsonl(os.path.join(run_dir, "metrics.jsonl"))
    out_dir = os.path.join(run_dir, "plots")
    os.makedirs(out_dir, exist_ok=True)
    written = []
    train = [r for r in rows if any(k.startswith("loss/") for k in r)]
    if train:
        fig, ax = plt.subplots(figsize=(7, 4))
        for key in sorted({k for r in train for k in r if k.startswith("loss/")}):
            points = [(r["step"], r[key]) for r in train if key in r]
            ax.plot([p[0] for p in points], [p[1] for p in points], label=key[len("loss/"):])
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title("training loss terms")
        ax.legend()
        ax.grid(alpha=0.3)
        written.append(_save(fig, os.path.join(out_dir, "losses.png")))
    val = [r for r in rows if "val/mIoU" in r]
    if val:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot([r["step"] for r in val], [100 * r["val/mIoU"] for r in val], marker="o")
        ax.set_xlabel("step")
        ax.set_ylabel("mIoU (%)")
        ax.set_title("validation mIoU")
        ax.grid(alpha=0.3)
        written.append(_save(fig, os.path.join(out_dir, "val_miou.png")))
    return written


def _save(fig, path: str) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
