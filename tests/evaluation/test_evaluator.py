"""evaluate(): 2-process gloo evaluation equals one process exactly; the protocol decides the inference; prediction
pictures only with an output folder."""
import importlib
import os
import sys

import cv2
import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from hmkd.config.schema import EvalConfig
from hmkd.evaluation import display_image, evaluate, save_prediction
from hmkd.models import SegOutput

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
worker = importlib.import_module("eval_dist_worker")   # by module name, so spawned children can unpickle run_rank

SLIDE = EvalConfig(**worker.SLIDE)


def test_two_gloo_processes_count_every_image_once_and_match_one_process(tmp_path):
    single = evaluate(worker.TinySegmentor(), worker.RecordingDataset(), SLIDE, "cpu")
    assert single["num_images"] == 5
    mp.spawn(worker.run_rank, args=(2, str(tmp_path / "pg_init"), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(str(tmp_path / ("rank%d.pt" % rank))) for rank in range(2)]

    assert results[0]["loaded"] == [0, 2, 4] and results[1]["loaded"] == [1, 3]
    for result in results:
        assert result["metrics"]["confusion_matrix"] == single["confusion_matrix"]   # exact integer counts
        assert result["metrics"]["num_images"] == 5
        assert result["metrics"]["mIoU"] == single["mIoU"]
    assert single["num_pixels"] == sum(int((worker.RecordingDataset()[i]["label"] != 255).sum()) for i in range(5))


class OneHotModel(nn.Module):
    """Predicts class argmax(image channels): the test decides every predicted pixel through the image."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, images_bchw):
        return SegOutput(images_bchw * self.scale, [])


class Items(list):
    """A dataset of prepared items with the attributes evaluate() reads from a SegDataset."""

    num_classes = 3
    palette = [(200, 0, 0), (0, 200, 0), (0, 0, 200)]


def one_hot_item(pred_hw, label_hw, name):
    image = torch.nn.functional.one_hot(torch.tensor(pred_hw), 3).permute(2, 0, 1).float()
    return {"image": image, "label": torch.tensor(label_hw), "name": name}


def test_saves_colour_coded_triptychs_for_the_first_images(tmp_path):
    data = Items([one_hot_item([[0, 1, 2], [2, 2, 1]], [[0, 1, 255], [2, 0, 1]], "city/a_leftImg8bit"),
                  one_hot_item([[1, 1, 1], [1, 1, 1]], [[1, 1, 1], [1, 1, 1]], "b"),
                  one_hot_item([[0, 0, 0], [0, 0, 0]], [[0, 0, 0], [0, 0, 0]], "c")])
    model = OneHotModel().train()
    metrics = evaluate(model, data, EvalConfig(num_visualize=2), "cpu", out_dir=str(tmp_path))
    assert model.training, "evaluate must restore the caller's mode"
    assert sorted(os.listdir(str(tmp_path))) == ["b.png", "city_a_leftImg8bit.png"]
    picture = cv2.imread(str(tmp_path / "city_a_leftImg8bit.png"))[..., ::-1]
    assert picture.shape == (2, 9, 3)   # image | label | prediction
    colours = np.asarray(Items.palette + [(0, 0, 0)], dtype=np.uint8)
    np.testing.assert_array_equal(picture[:, 3:6], colours[[[0, 1, 3], [2, 0, 1]]])          # label, ignore black
    np.testing.assert_array_equal(picture[:, 6:9], colours[[[0, 1, 3], [2, 2, 1]]])          # prediction, masked
    assert metrics["confusion_matrix"] == [[7, 0, 1], [0, 8, 0], [0, 0, 1]]

    item = data[0]
    save_prediction(str(tmp_path / "pred" / "a.png"), item["image"].argmax(0), item["label"], Items.palette,
                    layout="prediction")
    assert cv2.imread(str(tmp_path / "pred" / "a.png")).shape == (2, 3, 3)


@pytest.mark.parametrize("mode", ["imagenet_rgb", "bgr_mean"])
def test_display_image_inverts_the_dataset_normalisation(mode):
    from hmkd.data.transforms import Normalize

    normalize = Normalize(mode)
    image_bgr = np.random.default_rng(0).integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    image_chw = torch.from_numpy(np.ascontiguousarray(normalize(image_bgr).transpose(2, 0, 1)))
    np.testing.assert_array_equal(display_image(image_chw, normalize), image_bgr[..., ::-1])
    stretched = display_image(image_chw)
    assert stretched.dtype == np.uint8 and stretched.min() == 0 and stretched.max() == 255


def test_without_out_dir_nothing_is_written(tmp_path, monkeypatch):
    """Periodic validations during training: the protocol asks for pictures, but only the final one has a folder."""
    monkeypatch.chdir(tmp_path)
    evaluate(OneHotModel(), Items([one_hot_item([[0]], [[0]], "a")]), EvalConfig(num_visualize=2), "cpu")
    assert os.listdir(str(tmp_path)) == []


def test_the_protocol_decides_the_inference():
    via_cfg = evaluate(worker.TinySegmentor(), worker.RecordingDataset(), SLIDE, "cpu")
    flipped = evaluate(worker.TinySegmentor(), worker.RecordingDataset(), EvalConfig(flip=True), "cpu")
    whole = evaluate(worker.TinySegmentor(), worker.RecordingDataset(), EvalConfig(), "cpu")
    assert len({str(m["confusion_matrix"]) for m in (via_cfg, flipped, whole)}) == 3


def test_bad_options_fail_even_on_a_rank_without_images():
    """A rank whose shard is empty must not skip validation and then wait forever in the all-reduce."""
    with pytest.raises(ValueError, match="stride .* exceeds crop_size"):
        evaluate(OneHotModel(), Items([]), EvalConfig(mode="slide", crop_size=[4, 4], stride=[5, 5]), "cpu")
