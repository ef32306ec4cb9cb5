"""The results table: seeds aggregated (mean, sample std against statistics.stdev), one row per stage, '-' where a
value is unknown; the report files and charts."""
import json
import statistics

import pytest

from hmkd.evaluation.record import EvalRecord
from hmkd.reporting.report import write_report
from hmkd.reporting.results import aggregate, markdown
from hmkd.rundir import RunDir


def record(miou, road, seconds=None, **extra):
    per_class = {"road": {"iou": road, "acc": 1.0}, "sky": {"iou": None, "acc": None}}
    return EvalRecord(mIoU=miou, aAcc=0.9, mAcc=0.8, num_images=2, num_pixels=10, per_class=per_class,
                      confusion_matrix=[[1, 0], [0, 1]], model="deeplabv3_r18", train_seconds=seconds, **extra)


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
