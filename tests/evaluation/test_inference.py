"""predict_logits: whole vs sliding window where they must agree, window placement, flip and multi-scale averages."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hmkd.evaluation.inference import predict_logits, scaled_size, window_starts
from hmkd.models import SegOutput, build_model


class FnModel(nn.Module):
    """Logits = fn(images), recording every input it sees; the stand-in for a segmentor with known outputs."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.inputs = []

    def forward(self, images_bchw):
        self.inputs.append(images_bchw.clone())
        return SegOutput(self.fn(images_bchw), [])


def pixel_fn(seed=0, classes=4):
    """A nonlinear per-pixel map (1x1 conv, then square): translation-equivariant, so windows cannot change it."""
    weight = torch.randn(classes, 3, 1, 1, generator=torch.Generator().manual_seed(seed))
    return lambda x: F.conv2d(x, weight) ** 2


def images(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_whole_upsamples_reduced_logits_bilinearly_to_the_input_size():
    model = FnModel(lambda x: F.avg_pool2d(pixel_fn()(x), 4))   # logits at 1/4, like SegFormer
    x = images(2, 3, 20, 28)
    out = predict_logits(model, x)
    expected = F.interpolate(model.fn(x), size=(20, 28), mode="bilinear", align_corners=False)
    assert out.shape == (2, 4, 20, 28) and torch.allclose(out, expected, atol=1e-6)


def test_real_model_slide_with_window_equal_to_image_matches_whole():
    torch.manual_seed(0)
    model = build_model("deeplabv3_tiny", num_classes=5).eval()
    x = images(1, 3, 50, 70)   # non-square, not a multiple of the output stride
    whole = predict_logits(model, x)
    slide = predict_logits(model, x, mode="slide", crop_size=(50, 70), stride=(20, 30))
    assert whole.shape == (1, 5, 50, 70) and not whole.requires_grad
    assert torch.allclose(slide, whole, atol=1e-6)


def test_overlapping_windows_of_a_per_pixel_model_match_whole_for_every_batch_split():
    model = FnModel(pixel_fn())
    x = images(2, 3, 23, 31)
    whole = predict_logits(model, x)
    for batch_windows in (1, 3, 100):
        slide = predict_logits(model, x, mode="slide", crop_size=(10, 12), stride=(6, 7), batch_windows=batch_windows)
        assert torch.allclose(slide, whole, atol=1e-5), batch_windows   # a wrong count map would rescale pixels


def test_window_grid_is_mmseg_s_with_the_last_window_on_the_border():
    height, width = 10, 17
    rows, cols = torch.meshgrid(torch.arange(height).float(), torch.arange(width).float(), indexing="ij")
    x = torch.stack([rows, cols, torch.zeros_like(rows)])[None]   # each pixel carries its own coordinates
    model = FnModel(lambda t: t[:, :2])
    predict_logits(model, x, mode="slide", crop_size=(4, 6), stride=(3, 4), batch_windows=5)
    assert [len(batch) for batch in model.inputs] == [5, 5, 2]
    crops = torch.cat(model.inputs)
    assert crops.shape[-2:] == (4, 6)
    corners = [(int(c[0, 0, 0]), int(c[1, 0, 0])) for c in crops]
    assert corners == [(y, x) for y in (0, 3, 6) for x in (0, 4, 8, 11)]
    assert window_starts(17, 6, 4) == [0, 4, 8, 11] and window_starts(6, 6, 4) == [0]


def test_image_smaller_than_crop_is_zero_padded_and_cropped_back():
    weight = torch.randn(4, 3, 1, 1, generator=torch.Generator().manual_seed(1))
    model = FnModel(lambda t: F.conv2d(t, weight) + t.mean(dim=(1, 2, 3), keepdim=True))   # depends on the padding
    x = images(1, 3, 5, 7)
    out = predict_logits(model, x, mode="slide", crop_size=(8, 8), stride=(4, 4))
    assert [tuple(t.shape) for t in model.inputs] == [(1, 3, 8, 8)]
    expected = model.fn(F.pad(x, (0, 1, 0, 3)))[:, :, :5, :7]
    assert torch.allclose(out, expected, atol=1e-6)


def test_flip_averages_the_logits_of_both_passes():
    kernel = torch.tensor([1.0, -2.0, 0.5]).view(1, 1, 1, 3).repeat(4, 3, 1, 1)   # not mirror-symmetric
    model = FnModel(lambda t: F.conv2d(t, kernel, padding=(0, 1)))
    x = images(1, 3, 9, 13)
    plain = model.fn(x)
    by_hand = (plain + model.fn(x.flip(-1)).flip(-1)) / 2
    out = predict_logits(model, x, flip=True)
    assert torch.allclose(out, by_hand, atol=1e-6) and not torch.allclose(out, plain, atol=1e-3)
    slid = predict_logits(model, x, mode="slide", crop_size=(9, 13), stride=(9, 13), flip=True)
    assert torch.allclose(slid, by_hand, atol=1e-6)


def test_single_scale_one_is_whole_and_two_scales_average_resized_logits():
    model = FnModel(pixel_fn(seed=2))
    x = images(1, 3, 15, 22)
    assert torch.equal(predict_logits(model, x, scales=(1.0,)), predict_logits(model, x))

    def resize(t, size):
        return F.interpolate(t, size=size, mode="bilinear", align_corners=False)

    model.inputs.clear()
    out = predict_logits(model, x, scales=(1.0, 0.5))
    assert [tuple(t.shape[-2:]) for t in model.inputs] == [(15, 22), (8, 11)]   # rounded half up
    by_hand = (model.fn(x) + resize(model.fn(resize(x, (8, 11))), (15, 22))) / 2
    assert torch.allclose(out, by_hand, atol=1e-6)

    half = resize(x, (8, 11))
    passes = [model.fn(x), model.fn(x.flip(-1)).flip(-1), resize(model.fn(half), (15, 22)),
              resize(model.fn(half.flip(-1)), (15, 22)).flip(-1)]
    assert torch.allclose(predict_logits(model, x, scales=(1.0, 0.5), flip=True), sum(passes) / 4, atol=1e-5)
    assert scaled_size(15, 22, 0.75) == (11, 17) and scaled_size(3, 3, 0.01) == (1, 1)


@pytest.mark.parametrize("options, message", [
    ({"mode": "tiles"}, "mode must be one of"),
    ({"mode": "slide"}, "crop_size must be"),
    ({"mode": "slide", "crop_size": (4, 4), "stride": (2, 5)}, "exceeds crop_size"),
    ({"scales": ()}, "scales must be"),
    ({"scales": (1.0, 0.0)}, "scales must be"),
    ({"batch_windows": 0}, "batch_windows"),
])
def test_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        predict_logits(FnModel(pixel_fn()), images(1, 3, 8, 8), **options)


def test_warns_that_window_options_are_ignored_in_whole_mode():
    with pytest.warns(UserWarning, match="ignored in whole-image mode"):
        predict_logits(FnModel(pixel_fn()), images(1, 3, 8, 8), crop_size=(4, 4), stride=(2, 2))
