"""mmsegmentation's DeepLabV3 checkpoints load into ours and give mmseg's logits (oracle: mmsegmentation 0.30.0 itself).

mmseg is a test-only pin of the legacy venv; elsewhere these tests skip with that reason. The networks are built from
the configs mmseg ships (``mmseg/.mim/configs/deeplabv3``), with BN for SyncBN (same state dict) and no pretrained
download, given random weights and BN statistics, saved in mmseg's checkpoint layouts and loaded the public way.
"""
import logging
import os
import warnings

import pytest
import torch

from hmkd.config.schema import load_config, resolve_normalization
from hmkd.models import WeightsError, build_model, load_pretrained
from hmkd.resize import resize_to

MMSEG_OPTIONS = dict(deep_stem=True, stem_width=32, head="mmseg", basic_block_dilation="first")
CONFIGS = {"deeplabv3_r18": ("deeplabv3_r18-d8_512x1024_80k_cityscapes.py", 128),
           "deeplabv3_r50": ("deeplabv3_r50-d8_512x1024_80k_cityscapes.py", 512),
           "deeplabv3_r101": ("deeplabv3_r101-d8_512x1024_80k_cityscapes.py", 512)}
RECIPE = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "cityscapes",
                      "hmkd_mmseg_deeplabv3_r101_to_segformer_b0.yaml")
IMAGE_SHAPE = (1, 3, 65, 97)  # non-square, odd: every stride's rounding shows
TOLERANCE = 1e-5


def _mmseg():
    return pytest.importorskip("mmseg", reason="mmsegmentation (the oracle) is pinned in the legacy venv only")


def _randomise(net):
    """Random BN affine and running statistics (mmseg's init leaves them 1/0, which would hide a mis-mapped BN)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return net.eval()


def _mmseg_net(name):
    mmseg = _mmseg()
    from mmcv import Config
    from mmseg.models import build_segmentor

    config = os.path.join(os.path.dirname(mmseg.__file__), ".mim", "configs", "deeplabv3", CONFIGS[name][0])
    cfg = Config.fromfile(config)
    cfg.model.pretrained = None
    for part in ("backbone", "decode_head", "auxiliary_head"):
        cfg.model[part].norm_cfg = dict(type="BN", requires_grad=True)
    return _randomise(build_segmentor(cfg.model))


def _save_0x(net, path):
    """mmcv 1.x's save_checkpoint layout (mmseg 0.x): meta + state_dict (+ optimizer, left out here)."""
    meta = {"mmcv_version": "1.7.1", "time": "Thu Jan  1 00:00:00 2024", "env_info": "",
            "config": "", "seed": 0, "exp_name": "deeplabv3.py", "mmseg_version": "0.30.0",
            "CLASSES": tuple("class%d" % i for i in range(19)), "PALETTE": [[0, 0, 0]] * 19,
            "epoch": 1, "iter": 80000}
    torch.save({"meta": meta, "state_dict": net.state_dict()}, path)


def _save_1x(net, path):
    """mmengine's CheckpointHook layout (mmseg 1.x): meta with dataset_meta, state_dict, message_hub, optimizer,
    param_schedulers. mmseg 1.x's model state dict has the same keys as 0.x's: its SegDataPreProcessor keeps mean and
    std as non-persistent buffers."""
    meta = {"mmengine_version": "0.10.4", "epoch": 0, "iter": 80000, "seed": 0, "experiment_name": "deeplabv3",
            "time": "20240101_000000", "dataset_meta": {"classes": tuple("class%d" % i for i in range(19)),
                                                         "palette": [[0, 0, 0]] * 19}}
    torch.save({"meta": meta, "state_dict": net.state_dict(), "message_hub": {"log_scalars": {}},
                "optimizer": {"state": {}, "param_groups": []}, "param_schedulers": [{"last_epoch": 80000}]}, path)


def _ours(name, path, **options):
    width = CONFIGS[name][1]
    return build_model(name, num_classes=19, pretrained=str(path), aspp_width=width, **MMSEG_OPTIONS,
                       **options).eval()


def _report(label, ours, theirs):
    diff = (ours - theirs).abs().max().item()
    print("%-28s %-18s max |ours - mmseg| = %.3g (mmseg's max |value| %.3g)"
          % (label, tuple(theirs.shape), diff, theirs.abs().max().item()))
    assert ours.shape == theirs.shape, label
    assert theirs.abs().max().item() > 1e-2, "%s: values too small for the comparison to mean anything" % label
    return diff


@pytest.mark.parametrize("name,save", [("deeplabv3_r18", _save_0x), ("deeplabv3_r50", _save_0x),
                                       ("deeplabv3_r18", _save_1x)], ids=["r18-mmseg0x", "r50-mmseg0x", "r18-mmseg1x"])
def test_logits_equal_mmseg(tmp_path, name, save):
    net = _mmseg_net(name)
    path = tmp_path / ("%s_mmseg.pth" % name)
    save(net, path)
    model = _ours(name, path)
    images = torch.randn(*IMAGE_SHAPE)
    with torch.no_grad():
        feats = net.extract_feat(images)
        expected = {"logits (1/8)": net.decode_head(feats),
                    "logits (input size)": net.encode_decode(images, [{}])}
        out = model(images)
        got = {"logits (1/8)": out.logits, "logits (input size)": resize_to(out.logits, images.shape[-2:])}
    diffs = [_report("%s stage %d" % (name, i + 1), f, ref) for i, (f, ref) in enumerate(zip(out.features, feats))]
    diffs += [_report("%s %s" % (name, key), got[key], expected[key]) for key in expected]
    assert max(diffs) < TOLERANCE


def test_r101_key_and_shape_sets_match(tmp_path):
    """R-101-D8 is too slow to run here: every tensor of mmseg's file lands on one of ours with its shape, in the
    model the shipped recipe for mmseg's published Cityscapes teacher builds (plus the auxiliary head)."""
    net = _mmseg_net("deeplabv3_r101")
    path = tmp_path / "deeplabv3_r101-d8_512x1024_80k_cityscapes.pth"
    _save_0x(net, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a normalisation contradicting the file's family would warn
        teacher = resolve_normalization(load_config(RECIPE, ["teacher.checkpoint=%s" % path])).teacher
    assert teacher.normalize == "imagenet_rgb"  # mmseg's img_norm_cfg, not the base recipe's CIRKD bgr_mean
    model = build_model(teacher.name, num_classes=19, aux_head=True, **teacher.options)
    report = load_pretrained(model, str(path), strict=True)  # strict: no missing, no unexpected key
    assert report.target == "model" and not report.missing and not report.unexpected
    theirs = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    ours = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(theirs) == len(ours)
    assert sorted(v.numel() for v in theirs.values()) == sorted(v.numel() for v in ours.values())
    assert sum(v.sum().item() for v in theirs.values()) == pytest.approx(sum(v.sum().item() for v in ours.values()))


def test_auxiliary_head_loads_when_built_and_is_left_out_otherwise(tmp_path, caplog):
    net = _mmseg_net("deeplabv3_r18")
    path = tmp_path / "r18.pth"
    _save_0x(net, path)
    images = torch.randn(*IMAGE_SHAPE)
    with_aux = _ours("deeplabv3_r18", path, aux_head=True)
    with torch.no_grad():
        feats = net.extract_feat(images)
        diff = _report("auxiliary head", with_aux.aux_head(with_aux(images).features[2]), net.auxiliary_head(feats))
    assert diff < TOLERANCE
    without = build_model("deeplabv3_r18", num_classes=19, aspp_width=128, **MMSEG_OPTIONS)
    with caplog.at_level(logging.INFO):
        report = load_pretrained(without, str(path), strict=True)  # the teacher path: strict, yet aux keys are fine
    assert not report.missing and not report.unexpected
    assert "left out 8 tensors" in caplog.text and "auxiliary_head.*" in caplog.text


def test_wrong_options_name_the_options_to_set(tmp_path):
    """The dilation of a BasicBlock's second conv changes no shape: the layout check is what catches it."""
    net = _mmseg_net("deeplabv3_r18")
    path = tmp_path / "deeplabv3_r18_mmseg.pth"
    _save_0x(net, path)
    with pytest.raises(WeightsError) as err:
        build_model("deeplabv3_r18", num_classes=19, pretrained=str(path))
    message = str(err.value)
    assert message.startswith("weights file %s: an mmsegmentation DeepLabV3 checkpoint needs" % path)
    assert "deep_stem: true, stem_width: 32, head: mmseg, basic_block_dilation: first, aspp_width: 128" in message
    options = dict(MMSEG_OPTIONS, basic_block_dilation="both")
    with pytest.raises(WeightsError, match=r"built with \{basic_block_dilation: both\}"):
        build_model("deeplabv3_r18", num_classes=19, pretrained=str(path), aspp_width=128, **options)


def test_mmcv_resnet_v1c_backbone_file(tmp_path):
    """mmcv's ImageNet ResNetV1c (``stem.*`` keys, open-mmlab://resnet18_v1c) fills our backbone."""
    net = _mmseg_net("deeplabv3_r18")
    path = tmp_path / "resnet18_v1c.pth"
    torch.save({"state_dict": net.backbone.state_dict()}, path)
    model = build_model("deeplabv3_r18", num_classes=19, pretrained=str(path), **MMSEG_OPTIONS).eval()
    images = torch.randn(*IMAGE_SHAPE)
    with torch.no_grad():
        diffs = [_report("V1c stage %d" % (i + 1), f, ref)
                 for i, (f, ref) in enumerate(zip(model(images).features, net.backbone(images)))]
    assert max(diffs) < TOLERANCE


def test_other_mmseg_models_are_not_taken_for_deeplabv3(tmp_path):
    """An mmseg SegFormer file also has decode_head.conv_seg: another family, not a DeepLabV3 with wrong options."""
    path = tmp_path / "segformer_mit-b0_cityscapes.pth"
    torch.save({"state_dict": {"backbone.layers.0.0.projection.weight": torch.zeros(32, 3, 7, 7),
                               "decode_head.conv_seg.weight": torch.zeros(19, 256, 1, 1)}}, path)
    with pytest.raises(WeightsError, match="another model family"):
        build_model("deeplabv3_r18", 19, pretrained=str(path))
