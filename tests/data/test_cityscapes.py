import os
import shutil

import numpy as np
import pytest
import torch

from hmkd.data import (CityscapesDataset, DatasetError, EvalTransform, build_dataset, label_id_to_train_id,
                       write_sample_list)
from hmkd.data.cityscapes import CLASS_NAMES, EVAL_LABEL_IDS, PALETTE


def test_pairs_images_and_labels_by_city_and_stem(make_cityscapes):
    root = make_cityscapes()
    ds = CityscapesDataset(root, "train")
    assert len(ds) == 4
    assert [os.path.basename(os.path.dirname(s.image)) for s in ds.samples] == ["aachen", "aachen", "bochum", "bochum"]
    for sample in ds.samples:
        stem = os.path.basename(sample.image)[:-len("_leftImg8bit.png")]
        assert sample.label == os.path.join(root, "gtFine", "train", stem.split("_")[0], stem + "_gtFine_labelIds.png")
    assert len(CityscapesDataset(root, "val")) == 1


def test_label_id_lookup_table_is_the_official_mapping():
    lut = label_id_to_train_id()
    assert lut.shape == (256,) and lut.dtype == np.uint8
    expected = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
                27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
    for raw in range(256):
        assert lut[raw] == expected.get(raw, 255), raw
    assert len(EVAL_LABEL_IDS) == len(CLASS_NAMES) == len(PALETTE) == 19


def test_item_maps_label_ids_to_train_ids(make_cityscapes):
    # Pixels cycle through labelIds 7, 8, 26, 0, 255 -> trainIds 0, 1, 13, 255, 255.
    ds = CityscapesDataset(make_cityscapes(), "val", transform=EvalTransform())
    item = ds[0]
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 16, 32)
    assert item["label"].dtype == torch.int64 and item["label"].shape == (16, 32)
    assert item["label"].flatten()[:6].tolist() == [0, 1, 13, 255, 255, 0]
    assert item["name"] == "lindau_000000_000019_leftImg8bit"
    assert ds.num_classes == 19 and ds.ignore_index == 255
    assert ds.palette[0] == (128, 64, 128) and ds.class_names[18] == "bicycle"


def test_label_train_ids_are_read_unchanged(make_cityscapes):
    root = make_cityscapes(label_type="labelTrainIds", values=(0, 18, 255, 5))
    ds = CityscapesDataset(root, "train", label_type="labelTrainIds")
    assert all(s.label.endswith("_gtFine_labelTrainIds.png") for s in ds.samples)
    assert ds[0]["label"].flatten()[:4].tolist() == [0, 18, 255, 5]
    ds.validate("full")


def test_a_test_split_without_gtfine_is_unlabelled_but_train_and_val_need_labels(make_cityscapes):
    root = make_cityscapes({"train": {"aachen": 1}, "test": {"berlin": 2}})
    shutil.rmtree(os.path.join(root, "gtFine", "test"))   # the test images alone, as some copies have them
    data = {"name": "cityscapes", "root": root, "validate": "full"}
    test_set = build_dataset(data, split="test")
    assert len(test_set) == 2 and all(s.label is None for s in test_set.samples)
    item = test_set[1]
    assert item["name"] == "berlin_000001_000019_leftImg8bit" and item["image"].shape == (3, 16, 32)
    assert bool((item["label"] == 255).all()) and item["label"].shape == (16, 32)
    with pytest.raises(DatasetError, match="has no label, and the list format pairs every image"):
        write_sample_list(test_set, os.path.join(root, "test.txt"))
    with pytest.raises(DatasetError, match="gtFine/test does not exist"):
        build_dataset(dict(data, test_split="test", val_split="test"), split="val")   # val needs its labels
    with pytest.raises(DatasetError, match="gtFine/test does not exist"):
        CityscapesDataset(root, "test")


def test_a_half_labelled_test_split_is_refused(make_cityscapes):
    root = make_cityscapes({"test": {"berlin": 2}})
    os.remove(os.path.join(root, "gtFine", "test", "berlin", "berlin_000001_000019_gtFine_labelIds.png"))
    with pytest.raises(DatasetError, match="berlin_000001_000019_leftImg8bit.png has no label"):
        CityscapesDataset(root, "test", labels_optional=True)
