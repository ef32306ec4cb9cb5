"""mmsegmentation SegFormer checkpoints (0.x and 1.x layouts) load into ours and give mmseg's logits.

The oracle is mmsegmentation 0.30.0 (legacy stack only: it needs mmcv-full 1.x); those tests skip elsewhere.
"""
import logging
import os

import pytest
import torch
import torch.nn.functional as F

from hmkd.models import WeightsError, build_model, load_pretrained

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MMSEG_OPTIONS = {"head": "mmseg", "embed_norm_eps": 1e-6}  # what configs/cityscapes/*_mmseg*.yaml set
# MiT-B0 widths from 32, the others from 64; depths per size (mmseg's configs/segformer/segformer_mit-b*.py).
MIT_SIZES = {"segformer_b0": (32, [2, 2, 2, 2]), "segformer_b4": (64, [3, 8, 27, 3])}


def _mmseg():
    mmseg = pytest.importorskip("mmseg", reason="mmsegmentation (the oracle) is installed on the legacy stack only")
    logging.getLogger("mmcv").setLevel(logging.WARNING)  # init_weights logs one line per tensor
    return mmseg


@pytest.fixture()
def no_init(monkeypatch):
    """Modules built without their initialisers (allocation only): for key/shape checks of the full-size variants
    and for models whose every tensor is overwritten next, which is most of the cost of a B4 or B5 on the CPU."""
    for name in ("kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "uniform_", "normal_", "trunc_normal_",
                 "ones_", "zeros_", "constant_"):
        monkeypatch.setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)


@pytest.fixture(autouse=True)
def one_thread():
    """B4's forward on 2 shared cores: one thread is several times faster than an oversubscribed pool."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _mmseg_segformer(name: str, num_classes: int):
    """mmseg's EncoderDecoder (MiT + SegformerHead) as its Cityscapes configs build it, with random tensors.

    Every tensor is drawn (weights ~ N(0, 1/fan_in), norm scales around 1, biases and BN statistics random), so no
    tensor keeps a default value a wrong mapping could hide behind. BN instead of the configs' SyncBN: the same
    keys, and it runs on the CPU. Call it under ``no_init``: the draws here replace mmseg's initialisation."""
    _mmseg()
    from mmseg.models import build_segmentor

    base, depths = MIT_SIZES[name]
    channels = [base * h for h in (1, 2, 5, 8)]
    cfg = dict(
        type="EncoderDecoder",
        backbone=dict(type="MixVisionTransformer", in_channels=3, embed_dims=base, num_stages=4, num_layers=depths,
                      num_heads=[1, 2, 5, 8], patch_sizes=[7, 3, 3, 3], sr_ratios=[8, 4, 2, 1],
                      out_indices=(0, 1, 2, 3), mlp_ratio=4, qkv_bias=True, drop_rate=0.0, attn_drop_rate=0.0,
                      drop_path_rate=0.1),
        decode_head=dict(type="SegformerHead", in_channels=channels, in_index=[0, 1, 2, 3], channels=256,
                         dropout_ratio=0.1, num_classes=num_classes, norm_cfg=dict(type="BN", requires_grad=True),
                         align_corners=False,
                         loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0)),
        train_cfg=dict(), test_cfg=dict(mode="whole"))
    model = build_segmentor(cfg)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=generator)
            if tensor.dim() > 1:
                tensor.copy_(noise * (tensor[0].numel() ** -0.5))
            elif key.endswith("running_var"):
                tensor.copy_(noise.abs() + 0.5)
            else:  # biases and BN means around 0, LayerNorm/BN scales around 1
                tensor.copy_(noise * 0.1 + (1.0 if key.endswith("weight") else 0.0))
    return model.eval()


def _save_0x(model, path):
    """As mmcv 1.x's runner writes it (mmseg 0.x): meta + state_dict (+ optimizer, dropped by published files)."""
    import mmseg

    meta = {"mmseg_version": mmseg.__version__, "CLASSES": tuple("c%d" % i for i in range(19)),
            "PALETTE": [[i, i, i] for i in range(19)], "epoch": 1, "iter": 160000, "config": "model = dict(...)"}
    torch.save({"meta": meta, "state_dict": model.state_dict()}, path)


def _save_1x(model, path):
    """As mmengine's runner writes mmseg 1.x checkpoints: the same state dict keys (SegDataPreProcessor's mean/std
    are non-persistent buffers), mmengine's meta, message hub, optimizer and schedulers beside it."""
    state = model.state_dict()
    meta = {"epoch": 0, "iter": 160000, "cfg": "model = dict(type='EncoderDecoder', ...)", "seed": 0,
            "experiment_name": "segformer_mit-b4_8xb1-160k_cityscapes-1024x1024", "time": "20230301_000000",
            "mmengine_version": "0.10.3",
            "dataset_meta": {"classes": tuple("c%d" % i for i in range(19)), "palette": [[i, i, i] for i in range(19)]}}
    torch.save({"meta": meta, "state_dict": state, "message_hub": {"log_scalars": {}, "runtime_info": {}},
                "optimizer": {"state": {}, "param_groups": [{"lr": 6e-5, "params": list(range(len(state)))}]},
                "param_schedulers": [{"by_epoch": False, "last_step": 160000}]}, path)


def _mmseg_outputs(model, images):
    with torch.no_grad():
        features = model.extract_feat(images)
        return features, model.decode_head(features), model.encode_decode(images, [{}])


def _assert_equal_to_mmseg(ours, mmseg_model, label):
    images = torch.randn(1, 3, 64, 96)  # non-square: a height/width swap anywhere shows
    features, logits, full = _mmseg_outputs(mmseg_model, images)
    with torch.no_grad():
        out = ours.eval()(images)
    assert out.logits.shape == logits.shape == (1, logits.shape[1], 16, 24)
    diffs = {"logits": (out.logits - logits).abs().max().item()}
    for i, (feat, ref) in enumerate(zip(out.features, features)):
        assert feat.shape == ref.shape
        diffs["stage%d" % (i + 1)] = (feat - ref).abs().max().item()
    # mmseg's whole-image result: the same logits resized to the input, bilinear without align_corners.
    upsampled = F.interpolate(out.logits, size=images.shape[2:], mode="bilinear", align_corners=False)
    diffs["full_res"] = (upsampled - full).abs().max().item()
    print("%s vs mmseg %s: max abs difference %s" % (label, _mmseg().__version__,
                                                      ", ".join("%s %.2e" % kv for kv in diffs.items())))
    assert max(diffs.values()) < 1e-5, diffs


@pytest.mark.parametrize("name", sorted(MIT_SIZES))
def test_mmseg_0x_checkpoint_gives_mmseg_logits(name, tmp_path, no_init):
    """A 0.x checkpoint ({"meta", "state_dict"}) through build_model(pretrained=...), strictly: every tensor used."""
    reference = _mmseg_segformer(name, num_classes=19)
    path = tmp_path / ("%s_mmseg0x.pth" % name)
    _save_0x(reference, path)
    ours = build_model(name, 19, **MMSEG_OPTIONS)
    report = load_pretrained(ours, str(path), strict=True)
    assert report.target == "model" and not report.missing and not report.unexpected
    _assert_equal_to_mmseg(ours, reference, name)


def test_mmseg_1x_checkpoint_through_the_shipped_teacher_config(tmp_path, no_init):
    """The distillation config's teacher section (head, eps) loads a 1.x-layout file the way distill does; B0 for
    time (the B4 the config names is checked above and by its published config below)."""
    from hmkd.config import load_config
    from hmkd.engine.trainer import build_teacher

    reference = _mmseg_segformer("segformer_b0", num_classes=19)
    path = tmp_path / "segformer_mit-b0_mmseg1x.pth"
    _save_1x(reference, path)
    cfg = load_config(os.path.join(REPO, "configs/cityscapes/hmkd_segformer_b4_mmseg_to_deeplabv3_r18.yaml"),
                      ["teacher.checkpoint=%s" % path, "teacher.name=segformer_b0"])
    teacher = build_teacher(cfg, num_classes=19)
    _assert_equal_to_mmseg(teacher, reference, "segformer_b0 (1.x layout, teacher config)")


def test_mmseg_encoder_file_fills_the_backbone(tmp_path, no_init):
    """mmseg's converted ImageNet encoders (mit_b0_20220624-*.pth) are the bare MiT: they fill our backbone."""
    reference = _mmseg_segformer("segformer_b0", num_classes=19)
    path = tmp_path / "mit_b0_mmseg.pth"
    torch.save({"state_dict": reference.backbone.state_dict()}, path)
    ours = build_model("segformer_b0", 19, **MMSEG_OPTIONS)
    report = load_pretrained(ours, str(path), strict=True)
    assert report.target == "backbone" and not report.missing and not report.unexpected
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for feat, ref in zip(ours.eval()(images, with_logits=False).features, reference.backbone(images)):
            torch.testing.assert_close(feat, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("size", ["b0", "b1", "b2", "b3", "b4", "b5"])
def test_published_configs_have_our_keys_and_shapes(size, no_init):
    """mmseg's own Cityscapes configs for MiT-B0..B5 (SyncBN head, 256 channels, 19 classes), built without weights:
    their converted keys and shapes are exactly ours with head=mmseg, so all sizes share the scheme tested above."""
    _mmseg()
    from mmcv import Config
    from mmseg.models import build_segmentor

    import mmseg

    config = os.path.join(os.path.dirname(mmseg.__file__), ".mim", "configs", "segformer",
                          "segformer_mit-%s_8x1_1024x1024_160k_cityscapes.py" % size)
    model = build_segmentor(Config.fromfile(config).model)  # init_weights (which would fetch weights) not called
    theirs = model.state_dict()
    ours = build_model("segformer_" + size, 19, **MMSEG_OPTIONS)
    converted = ours.checkpoint_filter_fn(theirs, ours)[1]
    shapes = {k: tuple(v.shape) for k, v in converted.items()}
    assert shapes == {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    eps = {m.eps for m in model.backbone.modules() if isinstance(m, torch.nn.LayerNorm)}
    assert eps == {m.eps for m in ours.backbone.modules() if isinstance(m, torch.nn.LayerNorm)} == {1e-6}


def test_mmseg_file_into_the_mlp_head_names_the_option(tmp_path, no_init):
    reference = _mmseg_segformer("segformer_b0", num_classes=19)
    path = tmp_path / "segformer_b0_mmseg.pth"
    _save_0x(reference, path)
    with pytest.raises(WeightsError, match=r"segformer_b0_mmseg.pth: .*SegformerHead.*set the model's options head: "
                                           r"mmseg and embed_norm_eps: 1e-6"):
        build_model("segformer_b0", 19, pretrained=str(path))


def test_own_mlp_checkpoint_into_the_mmseg_head_names_the_option(tmp_path):
    """Runs on both stacks (no mmseg needed): this project's all-MLP checkpoint is refused by a head=mmseg model."""
    path = tmp_path / "model.pth"
    torch.save({"model": build_model("segformer_tiny", 3).state_dict()}, path)
    with pytest.raises(WeightsError, match=r"model.pth: .*all-MLP decoder.*head 'mmseg'.*head: mlp"):
        build_model("segformer_tiny", 3, pretrained=str(path), head="mmseg")


def test_mmseg_head_is_a_checked_option(no_init):
    model = build_model("segformer_tiny", 3, head="mmseg")
    assert model.head == "mmseg" and hasattr(model.decode_head, "fusion_conv")
    assert build_model("segformer_b4", 3, head="mmseg").decode_head.classifier.in_channels == 256  # mmseg's width
    assert build_model("segformer_b4", 3).decode_head.classifier.in_channels == 768  # NVlabs' all-MLP width
    with pytest.raises(ValueError, match="head must be one of 'mlp', 'mmseg', got 'fpn'"):
        build_model("segformer_tiny", 3, head="fpn")
    with pytest.raises(ValueError, match="embed_norm_eps"):
        build_model("segformer_tiny", 3, embed_norm_eps=0.0)
