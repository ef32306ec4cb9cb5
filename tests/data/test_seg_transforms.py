import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hmkd.data import CityscapesDataset, EvalTransform, Normalize, SyntheticDataset, TrainTransform, sample_rng


def _rng(i):
    return np.random.Generator(np.random.PCG64([0, 0, i]))


def _image_label(height, width, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
            rng.choice(np.array([0, 5, 9], np.uint8), size=(height, width)))


@pytest.mark.parametrize("size", [(10, 12), (40, 70), (20, 20)])
@pytest.mark.parametrize("normalize", ["imagenet_rgb", "bgr_mean"])
def test_output_is_exactly_the_crop(size, normalize):
    t = TrainTransform((24, 30), (0.5, 2.0), 0.1, normalize=normalize)
    image, label = _image_label(*size)
    for i in range(10):
        out_image, out_label = t(image, label, _rng(i))
        assert out_image.shape == (3, 24, 30) and out_image.dtype == torch.float32
        assert out_label.shape == (24, 30) and out_label.dtype == torch.int64
        # Nearest-neighbour label resizing never invents values; padding adds only the ignore value.
        assert set(out_label.unique().tolist()) <= {0, 5, 9, 255}


def test_padding_is_ignore_in_label_and_zero_in_normalised_image():
    t = TrainTransform((16, 20), (1.0, 1.0), 0.1, flip=False)
    image, label = _image_label(10, 12)
    out_image, out_label = t(image, label, _rng(0))
    assert (out_label[10:] == 255).all() and (out_label[:, 12:] == 255).all()
    assert (out_image[:, 10:] == 0).all() and (out_image[:, :, 12:] == 0).all()
    assert torch.equal(out_label[:10, :12], torch.from_numpy(label.astype(np.int64)))
    expected = torch.from_numpy(Normalize("imagenet_rgb")(image).transpose(2, 0, 1).copy())
    assert torch.equal(out_image[:, :10, :12], expected)


def test_flip_moves_image_and_label_together():
    t = TrainTransform((12, 16), (1.0, 1.0), 0.1, flip=True)
    image, label = _image_label(12, 16)
    flips = [t.sample_params(_rng(i), 12, 16)["flip"] for i in range(20)]
    assert True in flips and False in flips
    plain = t(image, label, _rng(flips.index(False)))
    flipped = t(image, label, _rng(flips.index(True)))
    assert torch.equal(flipped[0], plain[0].flip(-1)) and torch.equal(flipped[1], plain[1].flip(-1))
    assert not torch.equal(flipped[1], plain[1])
    never = TrainTransform((12, 16), (1.0, 1.0), 0.1, flip=False)
    assert not any(never.sample_params(_rng(i), 12, 16)["flip"] for i in range(20))


def test_normalisation_matches_hand_computation():
    pixel_bgr = np.array([[[10, 20, 30]]], np.uint8)
    rgb = Normalize("imagenet_rgb")(pixel_bgr)[0, 0]
    assert rgb == pytest.approx([(30 - 123.675) / 58.395, (20 - 116.28) / 57.12, (10 - 103.53) / 57.375], abs=1e-5)
    bgr = Normalize("bgr_mean")(pixel_bgr)[0, 0]
    assert bgr == pytest.approx([10 - 104.008, 20 - 116.669, 30 - 122.679], abs=1e-4)
    image, _ = EvalTransform("bgr_mean")(pixel_bgr, np.zeros((1, 1), np.uint8))
    assert image[:, 0, 0].tolist() == pytest.approx([10 - 104.008, 20 - 116.669, 30 - 122.679], abs=1e-4)
    with pytest.raises(ValueError, match="imagenet_rgb"):
        Normalize("rgb")


def test_eval_transform_keeps_full_resolution():
    image, label = _image_label(37, 53)
    out_image, out_label = EvalTransform()(image, label)
    assert out_image.shape == (3, 37, 53) and torch.equal(out_label, torch.from_numpy(label.astype(np.int64)))


def test_scales_come_from_the_step_grid_and_set_the_resized_size():
    t = TrainTransform((64, 64), (0.5, 2.0), 0.1, flip=False)
    assert t.scales.tolist() == pytest.approx([0.5 + 0.1 * k for k in range(16)])
    seen = set()
    image, label = _image_label(20, 30)
    for i in range(120):
        params = t.sample_params(_rng(i), 20, 30)
        assert any(abs(params["scale"] - s) < 1e-9 for s in t.scales)
        seen.add(round(params["scale"], 6))
    assert len(seen) >= 12
    # The crop (64x64) covers any scaled image up to 2x: the non-ignore area is the resized image's size.
    for i in range(5):
        params = t.sample_params(_rng(i), 20, 30)
        _, out_label = t(image, label, _rng(i))
        valid = (out_label != 255).nonzero()
        assert (valid[:, 0].max() + 1, valid[:, 1].max() + 1) == (round(20 * params["scale"]),
                                                                  round(30 * params["scale"]))
    coarse = TrainTransform((8, 8), (0.5, 2.0), 0.25)
    assert coarse.scales.tolist() == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert TrainTransform((8, 8), (0.5, 2.0), 0).scales is None


def test_augmentation_depends_only_on_seed_epoch_index(make_cityscapes):
    root = make_cityscapes()
    t = TrainTransform((12, 20), (0.5, 2.0), 0.1)
    a, b = CityscapesDataset(root, "train", transform=t, seed=7), CityscapesDataset(root, "train", transform=t, seed=7)
    a.set_epoch(3)
    b.set_epoch(3)
    for index in range(4):  # global RNG state must not matter
        np.random.seed(index)
        torch.manual_seed(index)
        first = a[index]
        np.random.seed(100 + index)
        torch.manual_seed(100 + index)
        second = b[index]
        assert torch.equal(first["image"], second["image"]) and torch.equal(first["label"], second["label"])
    first = a[2]
    assert torch.equal(b[(3, 2)]["image"], first["image"])  # (epoch, index) keys reach persistent workers
    other_epoch = [b[(e, 2)]["image"] for e in range(4, 8)]
    assert not any(torch.equal(img, first["image"]) for img in other_epoch)
    other_seed = CityscapesDataset(root, "train", transform=t, seed=8)
    assert not all(torch.equal(other_seed[(e, 2)]["image"], a[(e, 2)]["image"]) for e in range(4))
    assert sample_rng(7, 3, 2).random() == sample_rng(7, 3, 2).random() != sample_rng(7, 4, 2).random()


def test_dataloader_workers_give_the_same_samples_as_direct_indexing():
    ds = SyntheticDataset(num_classes=4, image_size=(24, 24), length=6,
                          transform=TrainTransform((16, 16), (0.5, 1.5), 0.25), seed=1)
    ds.set_epoch(2)
    batches = list(DataLoader(ds, batch_size=3, num_workers=2, shuffle=False))
    loaded = torch.cat([b["label"] for b in batches])
    assert torch.equal(loaded, torch.stack([ds[i]["label"] for i in range(6)]))
    assert torch.equal(torch.cat([b["image"] for b in batches]), torch.stack([ds[i]["image"] for i in range(6)]))
