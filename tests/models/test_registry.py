"""Every registered model: logits and four features of the declared strides and widths, forward and backward."""
import math

import pytest
import torch

from hmkd.models import build_model, deeplabv3, list_models, model_entry, register_model, segformer

NUM_CLASSES = 3


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_shapes(name):
    model = build_model(name, num_classes=NUM_CLASSES).train()
    for height, width in ((64, 64), (72, 100)):  # the second is not a multiple of 32, and not square
        images = torch.randn(2, 3, height, width, requires_grad=False)
        out = model(images)
        red = model.logits_reduction
        assert out.logits.shape == (2, NUM_CLASSES, math.ceil(height / red), math.ceil(width / red))
        assert len(out.features) == 4
        for feat, info in zip(out.features, model.feature_info):
            assert feat.shape == (2, info.channels, math.ceil(height / info.reduction),
                                  math.ceil(width / info.reduction))
        out.logits.mean().backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None for g in grads[:5]) and all(torch.isfinite(g).all() for g in grads if g is not None)
        model.zero_grad()


def test_family_strides_are_as_published():
    segformer = build_model("segformer_b0", NUM_CLASSES)
    assert [i.reduction for i in segformer.feature_info] == [4, 8, 16, 32] and segformer.logits_reduction == 4
    assert [i.channels for i in segformer.feature_info] == [32, 64, 160, 256]
    deeplab = build_model("deeplabv3_r101", NUM_CLASSES)
    assert [i.reduction for i in deeplab.feature_info] == [4, 8, 8, 8] and deeplab.logits_reduction == 8
    assert [i.channels for i in deeplab.feature_info] == [256, 512, 1024, 2048]
    assert build_model("segformer_b4", NUM_CLASSES).decode_head.linear_fuse.out_channels == 768


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as err:
        build_model("segformer_b9", NUM_CLASSES)
    message = str(err.value)
    assert "segformer_b9" in message and "deeplabv3_r18" in message and "segformer_b0" in message


def test_bad_options_and_classes_are_named():
    with pytest.raises(ValueError, match="num_classes"):
        build_model("segformer_b0", 0)
    with pytest.raises(ValueError, match="deeplabv3_r18.*options"):
        build_model("deeplabv3_r18", 19, no_such_option=1)


def test_options_are_checked_with_a_did_you_mean():
    with pytest.raises(ValueError, match=r"'deeplabv3_tiny': unknown config key 'options\.aspp_widht'; "
                                         r"did you mean 'options\.aspp_width'\?"):
        build_model("deeplabv3_tiny", NUM_CLASSES, aspp_widht=8)
    with pytest.raises(ValueError, match=r"options\.output_stride must be one of 8, 16, 32, got 4"):
        build_model("deeplabv3_tiny", NUM_CLASSES, output_stride=4)
    assert build_model("deeplabv3_tiny", NUM_CLASSES).decode_head.aspp.project[0][0].out_channels == 16
    assert build_model("deeplabv3_tiny", NUM_CLASSES, aspp_width=8).decode_head.aspp.project[0][0].out_channels == 8


@pytest.mark.parametrize("name", list_models())
def test_built_model_carries_its_registry_entry(name):
    """Family and weight filter come from the registry, not from the class name or the class's module."""
    entry = model_entry(name)
    family, module = ("cnn", deeplabv3) if name.startswith("deeplabv3") else ("transformer", segformer)
    assert entry.family == family and entry.checkpoint_filter_fn is module.checkpoint_filter_fn
    if name.endswith("_tiny"):  # the full-size ones take seconds to build
        model = build_model(name, NUM_CLASSES)
        assert model.family == family and model.checkpoint_filter_fn is entry.checkpoint_filter_fn


def test_register_refuses_an_unknown_family():
    with pytest.raises(ValueError, match="model family must be one of cnn, transformer, got 'rnn'"):
        register_model("rnn", deeplabv3.DeepLabV3Options)


@pytest.mark.parametrize("name", ["segformer_tiny", "deeplabv3_tiny"])
def test_features_only_forward_skips_the_head_and_keeps_the_features(name):
    torch.manual_seed(0)
    model = build_model(name, 5, **({"aux_head": True} if name.startswith("deeplab") else {})).eval()
    images = torch.randn(2, 3, 64, 72)
    full, bare = model(images), model(images, with_logits=False)
    assert bare.logits is None and bare.aux_logits is None
    assert len(bare.features) == len(full.features) == 4
    for a, b in zip(bare.features, full.features):
        assert torch.equal(a, b)
