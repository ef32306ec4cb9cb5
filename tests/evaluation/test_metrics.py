"""SegMetric against an independent numpy computation, hand-computed examples, and streaming == one update."""
import math

import numpy as np
import pytest
import torch

from hmkd.evaluation.metrics import SegMetric, pair_counts

IGNORE = 255


def reference_scores(pred: np.ndarray, label: np.ndarray, num_classes: int):
    """Confusion matrix by np.add.at and per-class IoU/accuracy from boolean masks, independent of SegMetric."""
    keep = label != IGNORE
    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(conf, (label[keep], pred[keep]), 1)
    iou, acc = [], []
    for c in range(num_classes):
        is_label, is_pred = (label == c) & keep, (pred == c) & keep
        union = np.logical_or(is_label, is_pred).sum()
        inter = np.logical_and(is_label, is_pred).sum()
        iou.append(inter / union if union else math.nan)
        acc.append(inter / is_label.sum() if is_label.sum() else math.nan)
    return conf, iou, acc, (pred[keep] == label[keep]).mean()


def random_pair(rng, shape, num_classes, absent):
    """Predictions and labels over classes other than ``absent``, with about 15% ignore pixels."""
    classes = [c for c in range(num_classes) if c != absent]
    label = rng.choice(classes, size=shape)
    pred = np.where(rng.random(shape) < 0.6, label, rng.choice(classes, size=shape))
    label[rng.random(shape) < 0.15] = IGNORE
    return pred, label


def test_matches_independent_computation_with_ignore_and_absent_class():
    rng = np.random.default_rng(0)
    num_classes, absent = 6, 4
    pred, label = random_pair(rng, (3, 17, 23), num_classes, absent)
    meter = SegMetric(num_classes, IGNORE)
    meter.update(torch.from_numpy(pred), torch.from_numpy(label))
    out = meter.compute()
    conf, iou, acc, pixel_acc = reference_scores(pred, label, num_classes)

    np.testing.assert_array_equal(meter.matrix.numpy(), conf)
    assert out["confusion_matrix"] == conf.tolist()
    np.testing.assert_allclose(out["per_class_iou"], iou, rtol=1e-12)   # NaN positions must match too
    np.testing.assert_allclose(out["per_class_acc"], acc, rtol=1e-12)
    assert math.isnan(out["per_class_iou"][absent]) and math.isnan(out["per_class_acc"][absent])
    assert out["mIoU"] == pytest.approx(np.nanmean(iou), rel=1e-12)
    assert out["mAcc"] == pytest.approx(np.nanmean(acc), rel=1e-12)
    assert out["aAcc"] == pytest.approx(pixel_acc, rel=1e-12)
    assert out["num_pixels"] == int((label != IGNORE).sum()) and out["num_images"] == 3
    for key in ("mIoU", "aAcc", "mAcc"):
        assert isinstance(out[key], float) and 0.0 <= out[key] <= 1.0


def test_hand_computed_example():
    # (label, pred) over the non-ignored pixels: (0,0) (0,1) (1,1) (1,1) (2,0); the ignored pixel predicts 2.
    label = torch.tensor([[0, 0, 1], [1, IGNORE, 2]])
    pred = torch.tensor([[0, 1, 1], [1, 2, 0]])
    meter = SegMetric(3, IGNORE)
    meter.update(pred, label)
    out = meter.compute()
    assert out["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert out["per_class_iou"] == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert out["per_class_acc"] == pytest.approx([1 / 2, 1.0, 0.0])
    assert out["mIoU"] == pytest.approx(1 / 3)
    assert out["mAcc"] == pytest.approx(1 / 2)
    assert out["aAcc"] == pytest.approx(3 / 5)
    assert out["area_union"] == [3, 3, 1] and out["area_pred"] == [2, 3, 0] and out["num_pixels"] == 5


def test_class_only_predicted_scores_zero_iou_and_no_accuracy():
    """Predicted but never labelled: IoU 0 counts against mIoU; accuracy is undefined and left out of mAcc."""
    meter = SegMetric(3, IGNORE)
    meter.update(torch.tensor([[0, 2]]), torch.tensor([[0, 0]]))
    out = meter.compute()
    assert out["per_class_iou"][2] == 0.0 and math.isnan(out["per_class_iou"][1])
    assert math.isnan(out["per_class_acc"][2])
    assert out["mIoU"] == pytest.approx((0.5 + 0.0) / 2)
    assert out["mAcc"] == pytest.approx(0.5)


def test_dataset_level_iou_is_not_a_mean_of_per_image_ious():
    """Image 1: class 1 tiny and missed; image 2: class 1 large and found. Summed counts weight them by size."""
    meter = SegMetric(2, IGNORE)
    meter.update(torch.tensor([[0, 0, 0, 0]]), torch.tensor([[0, 0, 0, 1]]))
    meter.update(torch.tensor([[1, 1, 1, 0]]), torch.tensor([[1, 1, 1, 0]]))
    out = meter.compute()
    assert out["per_class_iou"] == pytest.approx([4 / 5, 3 / 4])   # class 0: 4 / (5 + 4 - 4)
    per_image_class1 = (0.0 + 1.0) / 2
    assert out["per_class_iou"][1] != pytest.approx(per_image_class1)


def test_streaming_updates_equal_one_update():
    rng = np.random.default_rng(1)
    parts = [random_pair(rng, shape, 5, absent=None) for shape in ((9, 13), (2, 9, 13), (1, 9, 13))]
    streamed = SegMetric(5, IGNORE)
    for pred, label in parts:
        streamed.update(torch.from_numpy(pred), torch.from_numpy(label))
    whole = SegMetric(5, IGNORE)
    whole.update(torch.from_numpy(np.concatenate([p.reshape(-1, 9, 13) for p, _ in parts])),
                 torch.from_numpy(np.concatenate([lab.reshape(-1, 9, 13) for _, lab in parts])))
    assert torch.equal(streamed.matrix, whole.matrix) and streamed.matrix.sum() > 0
    assert streamed.num_images == whole.num_images == 4
    assert streamed.compute() == whole.compute()
    streamed.reset()
    assert streamed.matrix.sum() == 0 and streamed.num_images == 0


def test_all_reduce_without_process_group_is_a_no_op():
    meter = SegMetric(3, IGNORE)
    meter.update(torch.tensor([[0, 1, 2]]), torch.tensor([[0, 1, 1]]))
    before = meter.matrix.clone()
    meter.all_reduce()
    assert torch.equal(meter.matrix, before) and meter.num_images == 1


def test_deterministic_counting_path_equals_bincount():
    index = torch.from_numpy(np.random.default_rng(2).integers(0, 30, size=500))
    fast, exact = pair_counts(index, 36, deterministic=False), pair_counts(index, 36, deterministic=True)
    assert torch.equal(fast, exact) and int(exact.sum()) == 500 and exact.shape == (36,)


def test_empty_meter_reports_nan_not_an_error():
    out = SegMetric(2, IGNORE).compute()
    assert math.isnan(out["mIoU"]) and math.isnan(out["aAcc"]) and out["num_pixels"] == 0


@pytest.mark.parametrize("pred, label, message", [
    (torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long), "equal shapes"),
    (torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long), "integer class ids"),
    (torch.zeros(2, 3, dtype=torch.long), torch.full((2, 3), 7), r"label values outside \[0, 3\)"),
    (torch.full((2, 3), 3), torch.zeros(2, 3, dtype=torch.long), r"predicted class ids outside \[0, 3\)"),
])
def test_rejects_bad_inputs(pred, label, message):
    with pytest.raises(ValueError, match=message):
        SegMetric(3, IGNORE).update(pred, label)


def test_rejects_ignore_index_that_is_a_class():
    with pytest.raises(ValueError, match="ignore_index 2"):
        SegMetric(3, ignore_index=2)
