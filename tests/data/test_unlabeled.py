"""data.unlabeled: a folder (Cityscapes' train_extra among them), a list file or the cityscapes: shortcut load as
all-void samples with the training transform; missing or empty sources are one-line errors naming the path."""
import os
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data.dataloader import default_collate

from hmkd.config import config_from_dict
from hmkd.data import (IGNORE_INDEX, DataConfig, MixedDataset, UnlabeledImages, build_dataset, build_unlabeled,
                       generate_scene, unlabeled_paths, with_unlabeled)

SYNTHETIC = {"name": "synthetic", "num_classes": 3, "image_size": [16, 24], "num_train": 4, "num_val": 2,
             "crop_size": [12, 16], "scale_range": [0.75, 1.25], "scale_step": 0.25}


@pytest.fixture
def scenes(tmp_path, write_png):
    """``scenes(names)``: synthetic scenes written as images at ``tmp_path/<name>``; returns the folder."""
    def write(names, folder="unlabeled"):
        for k, name in enumerate(names):
            image, _ = generate_scene(np.random.Generator(np.random.PCG64([9, k])), 3, (16 + 2 * k, 24))
            write_png(str(tmp_path / folder / name), image)
        return str(tmp_path / folder)
    return write


def test_folder_is_searched_recursively_in_a_fixed_order(scenes):
    folder = scenes(["b/2.png", "a/1.JPG", "a/0.jpeg", "c.png"])
    for other in ("a/labels.txt", "b/2.png.bak"):  # not images by their extension
        open(os.path.join(folder, other), "w").close()
    expected = [os.path.join(folder, p) for p in ("a/0.jpeg", "a/1.JPG", "b/2.png", "c.png")]
    assert unlabeled_paths(folder) == expected
    os.symlink(os.path.join(folder, "b"), os.path.join(folder, "b", "loop"))  # linked folders: followed, once
    os.symlink(os.path.join(folder, "a"), os.path.join(folder, "z_a"))
    assert unlabeled_paths(folder) == expected


def test_list_file_resolves_relative_paths_and_skips_comments(scenes, tmp_path):
    folder = scenes(["x.png", "y.png"])
    listing = tmp_path / "extra.lst"
    listing.write_text("# unlabelled frames\n\nunlabeled/y.png\n  %s  \n" % os.path.join(folder, "x.png"))
    assert unlabeled_paths(str(listing)) == [os.path.join(folder, "y.png"), os.path.join(folder, "x.png")]


def test_cityscapes_train_extra_layout_and_shortcut(make_cityscapes):
    root = make_cityscapes(splits={"train": {"aachen": 2}, "val": {"lindau": 1},
                                   "train_extra": {"augsburg": 2, "bad_honnef": 1}})
    data = {"name": "cityscapes", "root": root, "crop_size": [8, 12], "unlabeled": "cityscapes:train_extra"}
    labelled = build_dataset(data, "train", seed=3)
    images = build_unlabeled(data, labelled, validate="full")
    folder = os.path.join(root, "leftImg8bit", "train_extra")
    assert [os.path.relpath(s.image, folder) for s in images.samples] == [
        "augsburg/augsburg_000000_000019_leftImg8bit.png", "augsburg/augsburg_000001_000019_leftImg8bit.png",
        "bad_honnef/bad_honnef_000000_000019_leftImg8bit.png"]
    assert unlabeled_paths(folder) == [s.image for s in images.samples]  # the folder itself: the same images
    assert isinstance(images, UnlabeledImages) and images.transform is labelled.transform and images.seed == 3
    assert images.num_classes == 19 and images.class_names == labelled.class_names
    item = images[(0, 2)]
    assert item["image"].shape == (3, 8, 12) and item["name"] == "bad_honnef_000000_000019_leftImg8bit"
    assert torch.all(item["label"] == IGNORE_INDEX)


def test_unlabelled_samples_are_all_void_keyed_by_their_stream_and_collate_with_labelled(scenes):
    data = dict(SYNTHETIC, unlabeled=scenes(["a.png", "b.png", "c.png"]), unlabeled_ratio=0.5)
    labelled = build_dataset(data, "train", seed=1)
    images = build_unlabeled(data, labelled)
    image, label = images.load(2)
    assert label.shape == image.shape[:2] == (20, 24) and np.all(label == IGNORE_INDEX)
    assert torch.equal(images[(4, 1)]["image"], images[(4, 1)]["image"])  # a pure function of (seed, epoch, index)
    assert not torch.equal(images[(4, 1)]["image"], images[(5, 1)]["image"])
    draws = [images.augmentation_rng(0, i).integers(1 << 30) for i in range(3)]
    assert draws != [labelled.augmentation_rng(0, i).integers(1 << 30) for i in range(3)]  # not the labelled draws
    mixed = with_unlabeled(labelled, images)
    assert isinstance(mixed, MixedDataset) and len(mixed) == 7 and with_unlabeled(labelled, None) is labelled
    assert torch.equal(mixed[(2, 1)]["image"], labelled[(2, 1)]["image"])
    assert torch.equal(mixed[(3, 5)]["image"], images[(3, 1)]["image"])
    batch = default_collate([mixed[(0, 0)], mixed[(0, 4)]])
    assert batch["image"].shape == (2, 3, 12, 16) and bool((batch["label"][1] == IGNORE_INDEX).all())
    assert build_unlabeled(SYNTHETIC, labelled) is None


def test_config_keys_are_saved_only_when_set_and_the_ratio_is_checked(scenes):
    assert "unlabeled" not in DataConfig.from_dict(SYNTHETIC).to_dict()  # saved configs are as before
    folder = scenes(["a.png"])
    saved = DataConfig.from_dict(dict(SYNTHETIC, unlabeled=folder, unlabeled_ratio=0.5)).to_dict()
    assert (saved["unlabeled"], saved["unlabeled_ratio"]) == (folder, 0.5)
    with pytest.warns(UserWarning, match="data.unlabeled_ratio is ignored without data.unlabeled"):
        DataConfig.from_dict(dict(SYNTHETIC, unlabeled_ratio=2.0))
    with pytest.raises(ValueError, match=r"^data.unlabeled_ratio must be > 0 \(unlabelled images per labelled image "
                                         r"in a batch\), got 0"):
        DataConfig.from_dict(dict(SYNTHETIC, unlabeled=folder, unlabeled_ratio=0))
    with pytest.raises(ValueError, match=r"^data.unlabeled must be a folder, a .txt/.lst list, or cityscapes:<split> "
                                         r"\(e.g. train_extra\) with data.root set, got 'cityscapes:train_extra'$"):
        DataConfig.from_dict(dict(SYNTHETIC, unlabeled="cityscapes:train_extra"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DataConfig.from_dict(dict(SYNTHETIC, unlabeled=folder, unlabeled_ratio=2.0))


def test_experiment_checks_the_unlabelled_batch_and_kd_ignore_void(scenes):
    folder = scenes(["a.png"])
    base = {"model": {"name": "deeplabv3_tiny"}, "data": dict(SYNTHETIC, unlabeled=folder),
            "train": {"batch_size": 2}}
    assert config_from_dict(dict(base, data=dict(base["data"], unlabeled_ratio=0.5))).data.unlabeled_batch(2) == 1
    with pytest.raises(ValueError, match=r"^data.unlabeled_ratio=0.2 x train.batch_size=2 rounds to 0 unlabelled "
                                         r"images per batch; raise data.unlabeled_ratio to at least 0.5"):
        config_from_dict(dict(base, data=dict(base["data"], unlabeled_ratio=0.2)))
    with pytest.raises(ValueError, match=r"^loss.terms.kd.ignore_void=true leaves out every data.unlabeled image"):
        config_from_dict(dict(base, loss={"terms": {"ce": {}, "kd": {"ignore_void": True}}}))
    plain = dict(base, data=SYNTHETIC, loss={"terms": {"ce": {}, "kd": {"ignore_void": True}}})
    assert config_from_dict(plain).data.unlabeled_batch(2) == 0


@pytest.mark.parametrize("case,expected", [
    ("missing", "data.unlabeled: {tmp}/nowhere does not exist; expected a folder of images or a .txt/.lst list"),
    ("empty", "data.unlabeled folder {tmp}/empty holds no .png/.jpg/.jpeg image (searched recursively)"),
    ("list_missing", "data.unlabeled list {tmp}/extra.txt line 2 names {tmp}/gone.png, which does not exist "
                     "(and 1 more missing); fix the list or the files"),
    ("list_empty", "data.unlabeled list {tmp}/extra.txt names no image"),
    ("not_a_list", "data.unlabeled: {tmp}/a.csv is a file but not a .txt/.lst list"),
    ("undecodable", "data.unlabeled {tmp}/broken: 1 of 1 samples failed full validation: image {tmp}/broken/x.png "
                    "cannot be decoded"),
])
def test_bad_sources_are_one_line_errors_naming_the_path(tmp_path, case, expected):
    tmp = str(tmp_path)
    source = {"missing": tmp + "/nowhere", "empty": tmp + "/empty", "list_missing": tmp + "/extra.txt",
              "list_empty": tmp + "/extra.txt", "not_a_list": tmp + "/a.csv", "undecodable": tmp + "/broken"}[case]
    os.makedirs(tmp + "/empty/city")
    os.makedirs(tmp + "/broken")
    open(tmp + "/broken/x.png", "wb").write(b"not a png")
    open(tmp + "/a.csv", "w").close()
    text = {"list_missing": "# frames\ngone.png\nalso_gone.png\n", "list_empty": "# nothing yet\n\n"}.get(case)
    if text is not None:
        open(tmp + "/extra.txt", "w").write(text)
    data = dict(SYNTHETIC, unlabeled=source, validate="full")
    with pytest.raises((ValueError, FileNotFoundError)) as caught:
        build_unlabeled(data, build_dataset(data, "train"))
    message = str(caught.value)
    assert message.startswith(expected.format(tmp=tmp)) and "\n" not in message, message
