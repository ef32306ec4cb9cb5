"""The results table: seeds aggregated (mean, sample std against statistics.stdev), one row per stage, '-' where a
value is unknown; the report files and charts."""
import json
import statistics

import pytest

from hmkd.evaluation.record import EvalRecord
from hmkd.reporting.report import write_report
from hmkd.reporting.results import aggregate, markdown
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
