"""eval.json (contents, strict JSON, atomic replace) and the printed table."""
import json
import os

import pytest
import torch

from hmkd.evaluation.metrics import SegMetric
from hmkd.evaluation.report import format_table, write_eval_json

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
    write_eval_json(path, metrics, NAMES, extra={"checkpoint": "ckpt.pth", "eval": {"mode": "whole"}})
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
    assert data["checkpoint"] == "ckpt.pth" and data["eval"] == {"mode": "whole"}
    assert os.listdir(str(tmp_path / "run")) == ["eval.json"]   # no temp file left behind


def test_failed_write_keeps_the_previous_file_and_leaves_no_temp(tmp_path, metrics):
    path = str(tmp_path / "eval.json")
    write_eval_json(path, metrics, NAMES)
    with open(path) as f:
        before = f.read()
    with pytest.raises(TypeError):
        write_eval_json(path, metrics, NAMES, extra={"bad": object()})
    with pytest.raises(ValueError, match="overwrite"):
        write_eval_json(path, metrics, NAMES, extra={"mIoU": 1.0})
    with open(path) as f:
        assert f.read() == before
    assert os.listdir(str(tmp_path)) == ["eval.json"]


@pytest.mark.parametrize("names, message", [(NAMES[:3], "3 class names for 4 classes"),
                                            (["a", "b", "a", "c"], "class names repeat")])
def test_rejects_class_names_that_do_not_fit(tmp_path, metrics, names, message):
    with pytest.raises(ValueError, match=message):
        write_eval_json(str(tmp_path / "eval.json"), metrics, names)
    with pytest.raises(ValueError, match=message):
        format_table(metrics, names)


def test_table_format(metrics):
    assert format_table(metrics, NAMES).splitlines() == [
        "class         IoU      Acc",
        "road        33.33    50.00",
        "sidewalk    66.67   100.00",
        "building     0.00     0.00",
        "sky             -        -",
        "--------------------------",
        "mIoU: 33.33  aAcc: 60.00  mAcc: 50.00",
    ]
