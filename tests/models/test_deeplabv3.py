"""DeepLabV3-ResNet: torchvision-format weights give torchvision's features; deep stem; heads."""
import pytest
import torch
import torchvision

from hmkd.models import build_model


def _torchvision_features(net, images):
    x = net.maxpool(net.relu(net.bn1(net.conv1(images))))
    feats = []
    for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
        x = layer(x)
        feats.append(x)
    return feats


def _randomise_bn(module):
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)


@pytest.mark.parametrize("name,arch,output_stride", [
    ("deeplabv3_r18", "resnet18", 32),   # torchvision's BasicBlock has no dilation: compare undilated
    ("deeplabv3_r50", "resnet50", 8),    # torchvision dilates Bottleneck layers like ours at stride 8
])
def test_torchvision_file_gives_torchvision_features(tmp_path, name, arch, output_stride):
    torch.manual_seed(0)
    dilate = [False, True, True] if output_stride == 8 else None
    reference = getattr(torchvision.models, arch)(replace_stride_with_dilation=dilate).eval()
    _randomise_bn(reference)
    path = tmp_path / ("%s-test.pth" % arch)
    torch.save(reference.state_dict(), path)  # the torchvision file format, ImageNet fc included
    model = build_model(name, num_classes=19, pretrained=str(path), output_stride=output_stride).eval()
    images = torch.randn(1, 3, 72, 104)
    with torch.no_grad():
        expected = _torchvision_features(reference, images)
        out = model(images)
    for feat, ref in zip(out.features, expected):
        torch.testing.assert_close(feat, ref, rtol=0, atol=1e-5)


def test_deep_stem_loads_cirkd_layout(tmp_path):
    """The CIRKD ImageNet layout (conv1/bn1/conv2/bn2/conv3/bn3 stem) maps onto timm's deep stem."""
    model = build_model("deeplabv3_r18", num_classes=19, deep_stem=True)
    stem = model.backbone.conv1
    assert [stem[i].out_channels for i in (0, 3, 6)] == [64, 64, 128]
    state = {k: torch.randn_like(v) if v.is_floating_point() else v
             for k, v in model.backbone.state_dict().items()}
    renames = {"conv1.0.": "conv1.", "conv1.1.": "bn1.", "conv1.3.": "conv2.", "conv1.4.": "bn2.",
               "conv1.6.": "conv3.", "bn1.": "bn3."}
    cirkd = {}
    for key, value in state.items():
        for new, old in renames.items():
            if key.startswith(new):
                key = old + key[len(new):]
                break
        cirkd[key] = value
    assert "conv3.weight" in cirkd and "bn3.weight" in cirkd
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(cirkd, path)
    loaded = build_model("deeplabv3_r18", num_classes=19, deep_stem=True, pretrained=str(path))
    for key, value in state.items():
        assert torch.equal(loaded.backbone.state_dict()[key], value), key


def test_aux_head_only_in_training():
    model = build_model("deeplabv3_tiny", num_classes=3, aux_head=True)
    images = torch.randn(2, 3, 64, 80)
    out = model.train()(images)
    assert out.aux_logits is not None and out.aux_logits.shape == (2, 3, 8, 10)
    assert model.eval()(images).aux_logits is None


def test_aspp_width_follows_backbone():
    assert build_model("deeplabv3_r18", 19).decode_head.classifier.in_channels == 128
    assert build_model("deeplabv3_r50", 19).decode_head.classifier.in_channels == 256


def test_mmseg_options_build_mmseg_network():
    """ResNetV1c stem 3->32->32->64, only the first 3x3 conv of a dilated BasicBlock dilated, ASPPHead's concat."""
    model = build_model("deeplabv3_r18", 19, deep_stem=True, stem_width=32, head="mmseg", basic_block_dilation="first")
    stem = model.backbone.conv1
    assert [stem[i].out_channels for i in (0, 3, 6)] == [32, 32, 64]
    layer3, layer4 = model.backbone.layer3, model.backbone.layer4
    assert [(b.conv1.dilation, b.conv2.dilation) for b in (layer3[0], layer3[1], layer4[0], layer4[1])] == [
        ((1, 1), (1, 1)), ((2, 2), (1, 1)), ((2, 2), (1, 1)), ((4, 4), (1, 1))]
    assert all(b.conv2.padding == (1, 1) for b in (layer3[1], layer4[1]))
    assert model.decode_head.bottleneck[0].in_channels == 5 * 128
    default = build_model("deeplabv3_r18", 19).backbone.layer4
    assert [(b.conv1.dilation, b.conv2.dilation) for b in default] == [((2, 2), (4, 4)), ((4, 4), (4, 4))]
    out = model.eval()(torch.randn(1, 3, 65, 97))
    assert out.logits.shape == (1, 19, 9, 13)


@pytest.mark.parametrize("options,message", [
    (dict(stem_width=32), "stem_width sets the deep stem's width.*set deep_stem: true"),
    (dict(head="deeplab"), "head must be one of 'cirkd', 'mmseg', got 'deeplab'"),
    (dict(basic_block_dilation="second"), "basic_block_dilation must be one of 'both', 'first'"),
])
def test_option_values_are_checked(options, message):
    with pytest.raises(ValueError, match=message):
        build_model("deeplabv3_tiny", 3, **options)


def test_stage_widths_make_a_narrow_student_with_declared_features():
    import torch
    from hmkd.models import build_model
    model = build_model("deeplabv3_tiny", 7, stage_widths=[16, 32, 64, 128], deep_stem=True, stem_width=16,
                        aux_head=True)
    assert [f.channels for f in model.feature_info] == [16, 32, 64, 128]
    out = model(torch.randn(2, 3, 40, 56))
    assert [f.shape[1] for f in out.features] == [16, 32, 64, 128]
    assert out.logits.shape == (2, 7, 5, 7)
    assert sum(p.numel() for p in model.parameters()) < 0.5e6
    wide = build_model("deeplabv3_r50", 3, stage_widths=[8, 16, 32, 64])
    assert [f.channels for f in wide.feature_info] == [32, 64, 128, 256]  # Bottleneck expansion 4


def test_stage_widths_are_checked():
    import pytest
    from hmkd.models import build_model
    with pytest.raises(ValueError, match="stage_widths must be four positive widths"):
        build_model("deeplabv3_tiny", 3, stage_widths=[16, 32, 64])
