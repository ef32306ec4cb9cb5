import os

import numpy as np
import pytest

from hmkd.data import CamVidDataset, CityscapesDataset, DatasetError, ListDataset, build_dataset, check_samples


def _error(fn, *args, **kwargs):
    with pytest.raises(DatasetError) as err:
        fn(*args, **kwargs)
    return str(err.value)


def test_missing_root_and_split_directories(make_cityscapes, tmp_path):
    missing = str(tmp_path / "nowhere")
    message = _error(CityscapesDataset, missing, "train")
    assert missing in message and "expected a directory holding leftImg8bit/ and gtFine/" in message
    assert len(message.splitlines()) == 1
    assert missing in _error(CamVidDataset, missing, "train")

    root = make_cityscapes()
    message = _error(CityscapesDataset, root, "test")
    assert os.path.join(root, "leftImg8bit", "test") in message and "found splits: train, val" in message


def test_image_without_label_and_label_without_image(make_cityscapes):
    root = make_cityscapes()
    os.remove(os.path.join(root, "gtFine", "train", "bochum", "bochum_000001_000019_gtFine_labelIds.png"))
    os.rename(os.path.join(root, "leftImg8bit", "train", "aachen", "aachen_000000_000019_leftImg8bit.png"),
              os.path.join(root, "leftImg8bit", "train", "aachen", "aachen_000009_000019_leftImg8bit.png"))
    message = _error(CityscapesDataset, root, "train")
    assert message.splitlines()[0] == "Cityscapes train: 4 images but 3 labels, 3 unpaired:"
    assert "bochum_000001_000019_leftImg8bit.png has no label; expected " in message
    assert "aachen_000009_000019_leftImg8bit.png has no label" in message
    assert "aachen_000000_000019_gtFine_labelIds.png has no image; expected " in message


def test_camvid_name_mismatch(make_camvid):
    root = make_camvid(splits={"train": 2})
    os.rename(os.path.join(root, "trainannot", "0001TP_000030.png"), os.path.join(root, "trainannot", "other.png"))
    message = _error(CamVidDataset, root, "train")
    assert "image %s has no label; expected %s" % (os.path.join(root, "train", "0001TP_000030.png"),
                                                   os.path.join(root, "trainannot", "0001TP_000030.png")) in message
    assert "label %s has no image" % os.path.join(root, "trainannot", "other.png") in message


@pytest.mark.parametrize("which", ["image", "label"])
def test_truncated_png_is_found_by_full_check_only(make_camvid, truncate, which):
    root = make_camvid(splits={"train": 2})
    ds = CamVidDataset(root, "train")
    bad = getattr(ds.samples[1], which)
    truncate(bad)
    ds.validate("quick")  # existence and pairing only: does not decode
    message = _error(ds.validate, "full")
    assert "%s %s cannot be decoded" % (which, bad) in message and "expected a complete PNG/JPEG file" in message
    assert message.startswith("CamVid train: 1 of 2 samples failed full validation: ")
    assert len(message.splitlines()) == 1


def test_not_an_image_and_empty_file(make_camvid):
    root = make_camvid(splits={"train": 2})
    ds = CamVidDataset(root, "train")
    with open(ds.samples[0].image, "w") as f:
        f.write("not a png")
    open(ds.samples[1].label, "w").close()
    message = _error(ds.validate, "full")
    assert "image %s cannot be decoded (9 bytes" % ds.samples[0].image in message
    assert "label %s is empty (0 bytes)" % ds.samples[1].label in message
    assert "label %s is empty" % ds.samples[1].label in _error(ds.validate, "quick")


def test_label_values_outside_the_format(make_cityscapes, make_camvid, write_png):
    city = CityscapesDataset(make_cityscapes(values=(7, 40, 26, 34)), "val")
    message = _error(city.validate)
    expected = "label %s has values 34 at 128 pixels, 40 at 128 pixels; expected labelIds 0..33 or 255"
    assert expected % city.samples[0].label in message

    camvid = CamVidDataset(make_camvid(splits={"train": 1}), "train")
    label = np.zeros((16, 32), np.uint8)
    label[0, :3] = 12
    write_png(camvid.samples[0].label, label)
    message = _error(camvid.validate)
    expected = "label %s has value 12 at 3 pixels; expected 0..10 or 11 (void) for CamVid"
    assert expected % camvid.samples[0].label in message
    # The same check guards loading, so an unvalidated run still fails on the file, not in the loss.
    assert "has value 12 at 3 pixels" in _error(camvid.__getitem__, 0)


def test_size_mismatch_and_colour_label(make_camvid, write_png):
    ds = CamVidDataset(make_camvid(splits={"train": 2}), "train")
    write_png(ds.samples[0].label, np.zeros((8, 32), np.uint8))
    write_png(ds.samples[1].label, np.zeros((16, 32, 3), np.uint8))
    message = _error(ds.validate)
    assert "label %s is 8x32 but image %s is 16x32 (HxW); expected equal sizes" % ds.samples[0][::-1] in message
    expected = "label %s has shape 16x32x3 and dtype uint8; expected a single-channel 8-bit"
    assert expected % ds.samples[1].label in message


def test_listed_file_missing(tmp_path, make_camvid):
    root = make_camvid(splits={"train": 1})
    with open(str(tmp_path / "l.txt"), "w") as f:
        f.write("train/0001TP_000000.png trainannot/0001TP_000000.png\ntrain/gone.png trainannot/gone.png\n")
    ds = ListDataset(str(tmp_path / "l.txt"), num_classes=12, root=root)
    message = _error(ds.validate, "quick")
    assert "image %s does not exist; expected a file" % os.path.join(root, "train", "gone.png") in message


def test_reports_first_few_offenders_and_counts_the_rest(make_camvid, truncate):
    ds = CamVidDataset(make_camvid(splits={"train": 7}), "train")
    for sample in ds.samples:
        truncate(sample.label)
    with pytest.raises(DatasetError) as err:
        check_samples(ds.samples, ds.label_spec, level="full", workers=2, max_report=3, what="CamVid train")
    lines = str(err.value).splitlines()
    assert lines[0] == "CamVid train: 7 of 7 samples failed full validation:"
    assert len(lines) == 5 and lines[-1] == "  ... and 4 more"
    assert len(err.value.problems) == 7
    assert isinstance(err.value, ValueError)


def test_builder_validate_true_decodes_everything(make_camvid, truncate):
    root = make_camvid(splits={"train": 1, "val": 1})
    truncate(os.path.join(root, "val", "0001TP_000000.png"))
    cfg = {"name": "camvid", "root": root}
    assert len(build_dataset(cfg, "val")) == 1  # default level is quick
    with pytest.raises(DatasetError, match="cannot be decoded"):
        build_dataset(cfg, "val", validate=True)
    with pytest.raises(DatasetError, match="cannot be decoded"):
        build_dataset(dict(cfg, validate="full"), "val")


def test_truncated_jpeg_is_refused_although_opencv_half_decodes_it(tmp_path, write_png, truncate):
    from hmkd.data import read_image

    rng = np.random.default_rng(0)
    path = write_png(str(tmp_path / "frame.jpg"), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    assert read_image(path).shape == (64, 64, 3)
    truncate(path)
    message = _error(read_image, path)
    assert message.startswith("image %s cannot be decoded" % path) and "expected a complete PNG/JPEG" in message


def test_error_survives_dataloader_workers(make_camvid, write_png):
    """Workers send the message back and re-create the exception from it (torch's ExceptionWrapper), as pickle does."""
    import pickle

    from torch._utils import ExceptionWrapper

    ds = CamVidDataset(make_camvid(splits={"train": 1}), "train")
    write_png(ds.samples[0].label, np.full((16, 32), 12, np.uint8))
    try:
        ds[0]
    except DatasetError:
        wrapper = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(DatasetError) as err:
        wrapper.reraise()
    assert "label %s has value 12 at 512 pixels" % ds.samples[0].label in str(err.value)
    copy = pickle.loads(pickle.dumps(err.value))
    assert str(copy) == str(err.value) and copy.problems == [str(err.value)]


def test_fast_label_map_and_histogram_agree_with_numpy():
    """cv2.LUT / cv2.calcHist replace numpy indexing / bincount on the hot path; they must give the same answer."""
    from hmkd.data.validation import _histogram, identity_spec

    rng = np.random.default_rng(0)
    spec = identity_spec(19, 255, "test")
    spec.lut[:] = rng.integers(0, 256, 256, dtype=np.uint8)
    for shape in ((1, 1), (37, 53), (1024, 2048)):
        raw = rng.integers(0, 256, shape, dtype=np.uint8)
        assert np.array_equal(spec.map(raw), spec.lut[raw])
        assert np.array_equal(_histogram(raw), np.bincount(raw.ravel(), minlength=256))
    strided = rng.integers(0, 256, (40, 60), dtype=np.uint8)[:, ::2]
    assert np.array_equal(spec.map(strided), spec.lut[strided])
    assert np.array_equal(_histogram(strided), np.bincount(strided.ravel(), minlength=256))
