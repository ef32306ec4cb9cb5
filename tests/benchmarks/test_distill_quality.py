"""The distillation benchmark's own parts: the unlabelled scenes it writes, its table's verdicts (a NaN is "not
compared", never worse), its chart."""
import os

import cv2
import numpy as np
import pytest

from hmkd.benchmarks import table
from hmkd.benchmarks.common import write_result
from hmkd.benchmarks.distill_quality import markdown_table, method_rows, prepare_unlabeled
from hmkd.data.synthetic import SyntheticDataset
from hmkd.launcher.spec import load_spec
from hmkd.reporting.plots import paired_chart


def write_spec(tmp_path, overrides):
    config = tmp_path / "student.yaml"
    config.write_text("data: {name: synthetic, scene: context, num_classes: 7, num_train: 10, image_size: [24, 32]}\n"
                      "model: {name: deeplabv3_tiny}\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text("experiment: exp\nroot: %s\nstages:\n  - {name: few, kind: train, config: %s, overrides: %s}\n"
                    % (tmp_path / "runs", config, overrides))
    return load_spec(str(spec))


def test_unlabelled_scenes_are_the_train_scenes_past_the_labelled_ones(tmp_path):
    spec = write_spec(tmp_path, "[data.num_train=4, data.unlabeled=unlabeled]")
    written = prepare_unlabeled(spec)
    folder = os.path.join(spec.root, "exp", "unlabeled")
    assert written == {folder: 6}
    assert spec.stage("few").overrides == ["data.num_train=4", "data.unlabeled=" + folder]
    names = sorted(n for n in os.listdir(folder) if n.endswith(".png"))
    assert names == ["synthetic_train_%06d.png" % i for i in range(4, 10)]
    scenes = SyntheticDataset(7, (24, 32), 10, scene="context")
    assert np.array_equal(cv2.imread(os.path.join(folder, names[0])), scenes.load(4)[0])
    os.remove(os.path.join(folder, names[-1]))  # complete folders are kept as they are
    assert prepare_unlabeled(write_spec(tmp_path, "[data.num_train=4, data.unlabeled=unlabeled]")) == {folder: 5}


def test_unlabelled_scenes_need_fewer_labelled_ones(tmp_path):
    with pytest.raises(ValueError, match="stages.few: a relative data.unlabeled .* below the config's 10"):
        prepare_unlabeled(write_spec(tmp_path, "[data.unlabeled=unlabeled]"))


def rows():
    def row(label, mean, diff=None, ci=None, noise=None):
        return {"label": label, "mIoU_mean": mean, "mIoU_std": 0.01, "seeds": 5, "teacher": label != "ce",
                "train_seconds_mean": 10.0, "baseline": "ce", "diff_mean": diff, "diff_ci95": ci,
                "within_noise": noise}
    return {"eval": [row("ce", 0.20), row("kd", 0.25, 0.05, [0.02, 0.08], False),
                     row("cwd", 0.15, -0.05, [-0.08, -0.02], False), row("gla", 0.21, 0.01, [-0.02, 0.04], True)]}


def test_table_says_better_worse_within_noise_and_baseline():
    lines = markdown_table(rows()).splitlines()
    assert lines[2] == "| eval | ce | 5 | 20.00 ± 1.00 | - | - | baseline |"
    assert lines[3].endswith("| +5.00 vs ce | +2.00 to +8.00 | better |")
    assert lines[4].endswith("| -5.00 vs ce | -8.00 to -2.00 | worse |")
    assert lines[5].endswith("| +1.00 vs ce | -2.00 to +4.00 | within noise |")
    single = dict(rows()["eval"][1], seeds=1, diff_ci95=None, within_noise=None)
    assert markdown_table({"eval": [single]}).splitlines()[2].endswith("| +5.00 vs ce | - | single seed: no interval |")


def test_a_nan_score_or_difference_is_not_compared_never_worse(tmp_path):
    """An older report.json holding NaN (json reads it) and one of today's with a run left out."""
    nan = float("nan")
    base = {"label": "ce", "mIoU": 0.2, "mIoU_std": 0.01, "seeds": 5, "teacher": None, "train_seconds": 10.0,
            "vs_baseline": None}
    old = dict(base, label="kd", mIoU=nan, mIoU_std=nan, teacher="t",
               vs_baseline={"baseline": "ce", "mIoU": nan, "ci95": [nan, nan], "within_noise": False})
    new = dict(base, label="gla", seeds=0, mIoU=None, mIoU_std=None, teacher="t",
               not_compared=[{"run": "runs/gla/seed_0", "why": "eval.json holds mIoU NaN; evaluate the run again "
                                                               "(hmkd eval)"}],
               vs_baseline={"baseline": "ce", "seeds": [], "mIoU": None, "ci95": None, "within_noise": None})
    groups = {"eval": method_rows({"entries": [base, old, new]})}
    lines = markdown_table(groups).splitlines()
    assert lines[2] == "| eval | ce | 5 | 20.00 ± 1.00 | - | - | baseline |"
    assert lines[3] == "| eval | kd | 5 | - | - | - | no seed in common: not compared |"
    assert lines[4] == "| eval | gla | 0 | - | - | - | no seed in common: not compared |"
    assert lines[6:] == ["eval: not compared: runs/gla/seed_0 (stage gla): eval.json holds mIoU NaN; evaluate the "
                         "run again (hmkd eval)"]
    assert cv2.imread(paired_chart(str(tmp_path / "q.png"), groups)) is not None
    write_result(str(tmp_path), "distill_quality", {"groups": groups})
    figures = {r[1]: r[2] for r in table.rows(str(tmp_path))}
    assert figures["mIoU eval/gla (0 seed(s), context scenes)"] == "not compared"


def test_chart_and_benchmark_table_rows(tmp_path):
    path = paired_chart(str(tmp_path / "q.png"), rows())
    assert cv2.imread(path) is not None
    write_result(str(tmp_path), "distill_quality", {"groups": rows()})
    figures = {r[1]: r[2] for r in table.rows(str(tmp_path))}
    assert figures["mIoU eval/kd (5 seed(s), context scenes)"] == "25.00 +- 1.00 (+5.00, 95% +2.00 to +8.00 vs ce)"
    assert figures["mIoU eval/ce (5 seed(s), context scenes)"] == "20.00 +- 1.00"
