"""eval.json (contents, strict JSON, atomic replace, read back, damaged files, scores that are not scores) and the
printed table."""
import json
import os

import pytest
import torch

from hmkd.evaluation.metrics import SegMetric
from hmkd.evaluation.record import EvalRecord, format_table

NAMES = ["road", "sidewalk", "building", "sky"]


@pytest.fixture
def metrics():
    """The hand example of test_metrics.py plus a class ('sky') absent everywhere: IoU 1/3, 2/3, 0, undefined."""
    meter = SegMetric(4, 255)
    meter.update(torch.tensor([[0, 1, 1], [1, 2, 0]]), torch.tensor([[0, 0, 1], [1, 255, 2]]))
    return meter.compute()


def _no_nan(token):
    raise AssertionError("eval.json contains the non-JSON constant %s" % token)


def test_eval_json_contents(tmp_path, metrics):
    path = str(tmp_path / "run" / "eval.json")
    EvalRecord.from_metrics(metrics, NAMES, model="m", checkpoint="ckpt.pth", mode="whole").write(path)
    with open(path) as f:
        data = json.load(f, parse_constant=_no_nan)
    assert data["mIoU"] == pytest.approx(1 / 3) and data["aAcc"] == pytest.approx(3 / 5)
    assert data["mAcc"] == pytest.approx(1 / 2)
    assert list(data["per_class"]) == NAMES
    assert data["per_class"]["sidewalk"] == pytest.approx({"iou": 2 / 3, "acc": 1.0})
    assert data["per_class"]["building"] == {"iou": 0.0, "acc": 0.0}
    assert data["per_class"]["sky"] == {"iou": None, "acc": None}   # undefined, written as null
    assert data["num_images"] == 1 and data["num_pixels"] == 5
    assert data["confusion_matrix"][0] == [1, 1, 0, 0]
    assert data["checkpoint"] == "ckpt.pth" and data["mode"] == "whole" and data["model"] == "m"
    assert data["step"] is None and data["train_seconds"] is None  # every key present, null when unknown
    assert os.listdir(str(tmp_path / "run")) == ["eval.json"]   # no temp file left behind
    assert EvalRecord.read(path) == EvalRecord.from_metrics(metrics, NAMES, model="m", checkpoint="ckpt.pth",
                                                            mode="whole")


def test_failed_write_keeps_the_previous_file_and_leaves_no_temp(tmp_path, metrics):
    path = str(tmp_path / "eval.json")
    EvalRecord.from_metrics(metrics, NAMES, model="m").write(path)
    with open(path) as f:
        before = f.read()
    with pytest.raises(TypeError):
        EvalRecord.from_metrics(metrics, NAMES, model=object()).write(path)
    with pytest.raises(TypeError, match="mIoU"):
        EvalRecord.from_metrics(metrics, NAMES, model="m", mIoU=1.0)
    with open(path) as f:
        assert f.read() == before
    assert os.listdir(str(tmp_path)) == ["eval.json"]


@pytest.mark.parametrize("text, message", [("{", "cannot be read as JSON"),
                                           ('{"mIoU": 0.5}', "lacks confusion_matrix, model, num_images, "),
                                           ("[1, 2]", "is not an hmkd eval.json")])
def test_damaged_or_foreign_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "eval.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        EvalRecord.read(str(path))
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="run or finish that stage first"):
        EvalRecord.read(str(tmp_path / "missing.json"))


def _hand_written(tmp_path, metrics, text_of):
    """An eval.json as our writer writes it, then edited as text (the way a person or another tool changes one)."""
    path = tmp_path / "eval.json"
    EvalRecord.from_metrics(metrics, NAMES, model="m").write(str(path))
    path.write_text(text_of(path.read_text()))
    return str(path)


@pytest.mark.parametrize("edit, held", [
    (lambda t: t.replace('"mIoU": 0.3333333333333333', '"mIoU": NaN'), "holds mIoU NaN"),
    (lambda t: t.replace('"mIoU": 0.3333333333333333', '"mIoU": Infinity'), "holds mIoU Infinity"),
    (lambda t: t.replace('"mIoU": 0.3333333333333333', '"mIoU": null'), "holds mIoU null"),
    (lambda t: t.replace('"mIoU": 0.3333333333333333,', ''), "has no mIoU")])
def test_a_missing_or_non_finite_miou_reads_as_null_with_the_reason(tmp_path, metrics, edit, held):
    path = _hand_written(tmp_path, metrics, edit)
    record = EvalRecord.read(path)
    assert record.mIoU is None and record.aAcc == pytest.approx(3 / 5)
    assert record.not_scored == "eval.json %s; evaluate the run again (hmkd eval)" % held
    nan_class = _hand_written(tmp_path, metrics, lambda t: t.replace('"iou": 0.0', '"iou": NaN'))
    assert EvalRecord.read(nan_class).per_class["building"]["iou"] is None   # NaN is never a score


@pytest.mark.parametrize("old, new, message", [
    ('"mIoU": 0.3333333333333333', '"mIoU": "33.3"', 'mIoU is "33.3", not a number; scores are fractions in [0, 1]'),
    ('"mIoU": 0.3333333333333333', '"mIoU": 33.3', "mIoU is 33.3, outside [0, 1]; scores are fractions, not percent"),
    ('"iou": 0.0', '"iou": true', "per_class.building.iou is true, not a number")])
def test_a_score_that_is_not_a_fraction_is_one_line_naming_file_key_and_value(tmp_path, metrics, old, new, message):
    path = _hand_written(tmp_path, metrics, lambda t: t.replace(old, new))
    with pytest.raises(ValueError) as info:
        EvalRecord.read(path)
    assert str(info.value).startswith("%s: %s" % (path, message)) and "\n" not in str(info.value)
    assert str(info.value).endswith("evaluate the run again (hmkd eval)")


@pytest.mark.parametrize("names, message", [(NAMES[:3], "3 class names for 4 classes"),
                                            (["a", "b", "a", "c"], "class names repeat")])
def test_rejects_class_names_that_do_not_fit(metrics, names, message):
    with pytest.raises(ValueError, match=message):
        EvalRecord.from_metrics(metrics, names, model="m")


def test_table_format(metrics):
    assert format_table(EvalRecord.from_metrics(metrics, NAMES, model="m")).splitlines() == [
        "class         IoU      Acc",
        "road        33.33    50.00",
        "sidewalk    66.67   100.00",
        "building     0.00     0.00",
        "sky             -        -",
        "--------------------------",
        "mIoU: 33.33  aAcc: 60.00  mAcc: 50.00",
    ]
