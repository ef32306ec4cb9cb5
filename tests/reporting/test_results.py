"""The results table: seeds aggregated (mean, sample std against statistics.stdev), one row per stage, '-' where a
value is unknown; the report files and charts; a run without a finite mIoU not compared (never better or worse);
two runs of one seed refused."""
import json
import statistics

import pytest

from hmkd.evaluation.record import EvalRecord
from hmkd.reporting.report import write_report
from hmkd.reporting.results import aggregate, markdown, verdict
from hmkd.rundir import RunDir


def record(miou, road, seconds=None, model_name="deeplabv3_r18", **extra):
    per_class = {"road": {"iou": road, "acc": 1.0}, "sky": {"iou": None, "acc": None}}
    return EvalRecord(mIoU=miou, aAcc=0.9, mAcc=0.8, num_images=2, num_pixels=10, per_class=per_class,
                      confusion_matrix=[[1, 0], [0, 1]], model=model_name, train_seconds=seconds, **extra)


ROWS = [("student", record(0.50, 0.4, 100.0)), ("student", record(0.56, 0.6, 120.0)),
        ("hmkd", record(0.61, 0.7, teacher="segformer_b0", loss_terms=["ce", "gla", "hfa"], params=13_500_000,
                        flops=2_400_000_000, flops_size=[64, 96]))]


def test_seeds_are_aggregated_per_stage_in_first_seen_order():
    student, hmkd = aggregate(ROWS)
    assert [student["label"], hmkd["label"]] == ["student", "hmkd"]
    assert student["seeds"] == 2 and student["mIoU"] == pytest.approx(0.53)
    assert student["mIoU_std"] == pytest.approx(statistics.stdev([0.50, 0.56]))
    assert student["train_seconds"] == pytest.approx(110.0) and student["per_class_iou"]["road"] == pytest.approx(0.5)
    assert student["per_class_iou"]["sky"] is None
    assert hmkd["seeds"] == 1 and hmkd["mIoU_std"] is None and hmkd["train_seconds"] is None


def test_markdown_rows():
    lines = markdown(aggregate(ROWS)).splitlines()
    assert lines[2] == ("| student | deeplabv3_r18 | - | - | 2 | 53.00 ± 4.24 | 90.00 ± 0.00 | 80.00 ± 0.00 | - | - "
                        "| 110 s |")
    assert lines[3] == ("| hmkd | deeplabv3_r18 | segformer_b0 | ce+gla+hfa | 1 | 61.00 | 90.00 | 80.00 | 13.50 | 2.4 "
                        "| - |")
    assert "| road | 50.00 | 70.00 |" in lines and "| sky | - | - |" in lines


def test_report_files(tmp_path):
    out = write_report(RunDir(str(tmp_path)), ROWS)
    report = RunDir(str(tmp_path))
    assert open(report.report_md).read() == out["markdown"] and "(64x96)" in out["markdown"]
    saved = json.load(open(report.report_json))
    assert [e["label"] for e in saved["entries"]] == ["student", "hmkd"]
    assert [r["label"] for r in saved["runs"]] == ["student", "student", "hmkd"] and saved["runs"][0]["mIoU"] == 0.5
    for chart in (report.miou_chart, report.per_class_chart):
        assert open(chart, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def seeded(label, values, **extra):
    return [(label, record(v, 0.5, seed=s, **extra)) for s, v in enumerate(values)]


DISTILLED = dict(teacher="segformer_b0", loss_terms=["ce", "gla", "hfa"])


def test_each_stage_is_paired_by_seed_against_the_label_only_student():
    rows = (seeded("teacher", [0.80, 0.81, 0.79], model_name="segformer_b0") +
            seeded("student", [0.700, 0.690, 0.705]) +
            seeded("hmkd", [0.712, 0.703, 0.716], **DISTILLED) +   # +1.2, +1.3, +1.1: a steady gain
            seeded("kd", [0.690, 0.700, 0.700], **DISTILLED))     # -1.0, +1.0, -0.5: noise
    entries = {e["label"]: e for e in aggregate(rows)}
    assert entries["student"]["vs_baseline"] is None  # the baseline itself
    hmkd = entries["hmkd"]["vs_baseline"]
    assert hmkd["baseline"] == "student" and hmkd["seeds"] == [0, 1, 2]
    assert hmkd["mIoU"] == pytest.approx(0.012) and hmkd["within_noise"] is False and hmkd["ci95"][0] > 0
    assert entries["kd"]["vs_baseline"]["within_noise"] is True
    text = markdown(list(entries.values()))
    assert "mIoU difference to student, paired by seed" in text
    assert "| hmkd | 3 | +1.20 | +0.95 to +1.45 | better |" in text
    assert [line for line in text.splitlines() if line.startswith("| kd | 3 | -0.17 |")][0].endswith("| within noise |")


def test_a_single_seed_difference_says_so_and_the_baseline_can_be_named():
    rows = seeded("student", [0.70]) + seeded("hmkd", [0.73], **DISTILLED) + seeded("other", [0.60])
    entries = aggregate(rows)
    assert "| hmkd | 1 | +3.00 | - | single seed: no interval |" in markdown(entries)
    named = {e["label"]: e for e in aggregate(rows, baseline="other")}
    assert named["student"]["vs_baseline"]["mIoU"] == pytest.approx(0.10)
    with pytest.raises(ValueError, match="baseline 'teacher' is not one of the compared stages"):
        aggregate(rows, baseline="teacher")
    assert all(e["vs_baseline"] is None for e in aggregate(seeded("a", [0.5]) + seeded("b", [0.6])))  # no student


def test_a_nan_miou_is_not_compared_and_named_never_better_or_worse(tmp_path):
    nan = float("nan")
    rows = ([("student", record(v, 0.5, seed=s), "runs/student/seed_%d" % s) for s, v in enumerate([0.70, 0.69, 0.705])]
            + [("hmkd", record(v, 0.5, seed=s, **DISTILLED), "runs/hmkd/seed_%d" % s)
               for s, v in enumerate([0.712, nan, 0.716])]
            + [("kd", record(None, 0.5, seed=0, not_scored="eval.json holds mIoU NaN; evaluate the run again "
                                                          "(hmkd eval)", **DISTILLED), "runs/kd")])
    entries = {e["label"]: e for e in aggregate(rows)}
    hmkd, kd = entries["hmkd"], entries["kd"]
    # the mean and the pairing use the same two runs: seeds 0 and 2
    assert hmkd["seeds"] == 2 and hmkd["mIoU"] == pytest.approx(0.714) and hmkd["vs_baseline"]["seeds"] == [0, 2]
    assert hmkd["not_compared"] == [{"run": "runs/hmkd/seed_1", "why": "its mIoU is nan"}]
    assert kd["seeds"] == 0 and kd["mIoU"] is None and kd["vs_baseline"]["mIoU"] is None
    text = markdown(list(entries.values()))
    assert "| kd | deeplabv3_r18 | segformer_b0 | ce+gla+hfa | 0 | - | - | - | - | - | - |" in text
    assert "| kd | 0 | - | - | no seed in common: not compared |" in text
    assert [line for line in text.splitlines() if line.startswith("not compared")] == [
        "not compared: runs/hmkd/seed_1 (stage hmkd): its mIoU is nan",
        "not compared: runs/kd (stage kd): eval.json holds mIoU NaN; evaluate the run again (hmkd eval)"]
    assert "nan" not in text.replace("its mIoU is nan", "") and " worse " not in text
    out = write_report(RunDir(str(tmp_path)), rows)   # strict JSON and the charts: no NaN anywhere
    saved = json.load(open(RunDir(str(tmp_path)).report_json))
    assert [r["run"] for r in saved["runs"]][:2] == ["runs/student/seed_0", "runs/student/seed_1"]
    assert out["markdown"].count("not compared: ") == 2


def test_a_nan_interval_is_never_a_verdict():
    assert verdict({"mIoU": float("nan"), "ci95": [float("nan")] * 2, "within_noise": False}) == (
        "no seed in common: not compared")
    assert verdict({"mIoU": 0.01, "ci95": [float("nan"), 0.02], "within_noise": False}) == "not compared"
    assert verdict({"mIoU": 0.01, "ci95": [0.005, 0.02], "within_noise": False}) == "better"


def test_two_runs_of_one_seed_in_a_stage_are_refused_naming_both():
    rows = [("student", record(0.70, 0.5, seed=0), "runs/student/seed_0"),
            ("student", record(0.72, 0.5, seed=0), "runs/student/seed_1"),
            ("hmkd", record(0.71, 0.5, seed=0, **DISTILLED), "runs/hmkd")]
    with pytest.raises(ValueError) as info:
        aggregate(rows)
    assert str(info.value) == ("stage student has two runs with seed 0: runs/student/seed_0 and runs/student/seed_1; "
                               "give each run of a stage its own train.seed (the stage's seeds list sets them), or "
                               "compare one of them")
