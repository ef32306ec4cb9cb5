"""CIRKD's checkpoints load: its DeepLabV3 (the teacher deeplabv3_resnet101_citys_best_model.pth) and its ImageNet
ResNets (resnet18-imagenet.pth, resnet101-imagenet.pth).

CIRKD is not installable, so the files are written here with CIRKD's key names and shapes, read off its source
(github.com/winycg/CIRKD models/deeplabv3.py and models/base_models/resnet.py, which models/segbase.py imports):
``pretrained.`` + ResNetV1b with the deep stem as separate conv1/bn1/conv2/bn2/conv3/bn3 (3->64->64->128),
``head.aspp.b0`` (1x1), ``b1..b3.block`` (3x3 at 12/24/36), ``b4.gap`` (pooling), ``head.aspp.project``,
``head.block`` (3x3 conv, BN, ReLU, dropout, classifier), ASPP 512 wide for ResNet-18 and -101 alike, and
``auxlayer.block`` (FCN head on c3). Every tensor is checked where it landed module by module, and the logits against
a reference forward written here from the raw CIRKD-named tensors with torch.nn.functional only, following CIRKD's
dilation rules (a block's first conv at 1 in layer3 and 2 in layer4, its second conv at the layer's dilation).
"""
import logging
import math

import pytest
import torch
import torch.nn.functional as F

from hmkd.models import WeightsError, build_model, load_pretrained

CIRKD_OPTIONS = dict(deep_stem=True, aspp_width=512)
NUM_CLASSES = 19
IMAGE_SHAPE = (1, 3, 65, 97)
TOLERANCE = 1e-5
# (planes, stride, dilation) of CIRKD's layer1..4 with dilated=True (output stride 8)
STAGES = ((64, 1, 1), (128, 2, 1), (256, 1, 2), (512, 1, 4))


def _conv(shapes, name, out_ch, in_ch, kernel, bias=False):
    shapes[name + ".weight"] = (out_ch, in_ch, kernel, kernel)
    if bias:
        shapes[name + ".bias"] = (out_ch,)


def _bn(shapes, name, ch):
    for part in ("weight", "bias", "running_mean", "running_var"):
        shapes["%s.%s" % (name, part)] = (ch,)
    shapes[name + ".num_batches_tracked"] = ()


def cirkd_resnet_shapes(prefix, bottleneck, layers):
    """ResNetV1b(deep_stem=True) of CIRKD's resnet.py: name -> shape (it has no fc)."""
    shapes = {}
    for conv, bn, out_ch, in_ch in (("conv1", "bn1", 64, 3), ("conv2", "bn2", 64, 64), ("conv3", "bn3", 128, 64)):
        _conv(shapes, prefix + conv, out_ch, in_ch, 3)
        _bn(shapes, prefix + bn, out_ch)
    inplanes = 128
    for index, ((planes, stride, _), blocks) in enumerate(zip(STAGES, layers)):
        out_ch = planes * 4 if bottleneck else planes
        for b in range(blocks):
            p = "%slayer%d.%d." % (prefix, index + 1, b)
            convs = ([("conv1", planes, inplanes, 1), ("conv2", planes, planes, 3), ("conv3", out_ch, planes, 1)]
                     if bottleneck else [("conv1", planes, inplanes, 3), ("conv2", planes, planes, 3)])
            for i, (conv, o, c, k) in enumerate(convs):
                _conv(shapes, p + conv, o, c, k)
                _bn(shapes, p + "bn%d" % (i + 1), o)
            if b == 0 and (stride != 1 or inplanes != out_ch):
                _conv(shapes, p + "downsample.0", out_ch, inplanes, 1)
                _bn(shapes, p + "downsample.1", out_ch)
            inplanes = out_ch
    return shapes


def cirkd_deeplabv3_shapes(bottleneck, layers):
    """CIRKD's DeepLabV3(aux=True) state dict: name -> shape."""
    shapes = cirkd_resnet_shapes("pretrained.", bottleneck, layers)
    in_ch, width = (2048 if bottleneck else 512), 512
    _conv(shapes, "head.aspp.b0.0", width, in_ch, 1)
    _bn(shapes, "head.aspp.b0.1", width)
    for b in (1, 2, 3):
        _conv(shapes, "head.aspp.b%d.block.0" % b, width, in_ch, 3)
        _bn(shapes, "head.aspp.b%d.block.1" % b, width)
    _conv(shapes, "head.aspp.b4.gap.1", width, in_ch, 1)
    _bn(shapes, "head.aspp.b4.gap.2", width)
    _conv(shapes, "head.aspp.project.0", width, 5 * width, 1)
    _bn(shapes, "head.aspp.project.1", width)
    _conv(shapes, "head.block.0", width, width, 3)
    _bn(shapes, "head.block.1", width)
    _conv(shapes, "head.block.4", NUM_CLASSES, width, 1, bias=True)
    aux_in = in_ch // 2
    _conv(shapes, "auxlayer.block.0", aux_in // 4, aux_in, 3)
    _bn(shapes, "auxlayer.block.1", aux_in // 4)
    _conv(shapes, "auxlayer.block.4", NUM_CLASSES, aux_in // 4, 1, bias=True)
    return shapes


def random_state(shapes, seed=0):
    """Conv weights at He scale (activations stay O(1) through the depth), random BN statistics and affine."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(0)
        elif name.endswith("running_var") or (len(shape) == 1 and name.endswith("weight")):
            state[name] = torch.rand(shape, generator=gen) + 0.5
        elif len(shape) == 4:
            state[name] = torch.randn(shape, generator=gen) * math.sqrt(2.0 / (shape[1] * shape[2] * shape[3]))
        else:
            state[name] = torch.randn(shape, generator=gen) * 0.1
    return state


def cirkd_modules(model):
    """CIRKD module name -> our module, written out by hand (not via the loader's renaming rules)."""
    bb, head = model.backbone, model.decode_head
    table = {"pretrained.conv1": bb.conv1[0], "pretrained.bn1": bb.conv1[1], "pretrained.conv2": bb.conv1[3],
             "pretrained.bn2": bb.conv1[4], "pretrained.conv3": bb.conv1[6], "pretrained.bn3": bb.bn1,
             "head.aspp.b0.0": head.aspp.branches[0][0], "head.aspp.b0.1": head.aspp.branches[0][1],
             "head.aspp.b4.gap.1": head.aspp.branches[4].conv[0], "head.aspp.b4.gap.2": head.aspp.branches[4].conv[1],
             "head.aspp.project.0": head.aspp.project[0][0], "head.aspp.project.1": head.aspp.project[0][1],
             "head.block.0": head.block[0][0], "head.block.1": head.block[0][1], "head.block.4": head.classifier}
    for b in (1, 2, 3):
        table["head.aspp.b%d.block.0" % b] = head.aspp.branches[b][0]
        table["head.aspp.b%d.block.1" % b] = head.aspp.branches[b][1]
    if model.aux_head is not None:
        table.update({"auxlayer.block.0": model.aux_head.block[0][0], "auxlayer.block.1": model.aux_head.block[0][1],
                      "auxlayer.block.4": model.aux_head.classifier})
    for index in range(1, 5):
        for b, block in enumerate(getattr(bb, "layer%d" % index)):
            for name, module in block.named_modules():
                if name and isinstance(module, (torch.nn.Conv2d, torch.nn.BatchNorm2d)):
                    table["pretrained.layer%d.%d.%s" % (index, b, name)] = module
    return table


def assert_every_tensor_landed(state, model, prefix=""):
    table = cirkd_modules(model)
    for key, value in state.items():
        module_name, tensor_name = key.rsplit(".", 1)
        module = table[prefix + module_name]
        assert torch.equal(getattr(module, tensor_name), value), key


class Reference:
    """CIRKD's forward from its raw tensors, torch.nn.functional only (BasicBlockV1b ResNets)."""

    def __init__(self, state, prefix="pretrained."):
        self.s, self.p = state, prefix

    def conv(self, x, name, stride=1, dilation=1):
        w = self.s[name + ".weight"]
        return F.conv2d(x, w, self.s.get(name + ".bias"), stride, dilation * (w.shape[-1] // 2), dilation)

    def bn(self, x, name):
        s = self.s
        return F.batch_norm(x, s[name + ".running_mean"], s[name + ".running_var"], s[name + ".weight"],
                            s[name + ".bias"], False, 0.0, 1e-5)

    def cbr(self, x, conv, bn, **kw):
        return F.relu(self.bn(self.conv(x, conv, **kw), bn))

    def backbone(self, x):
        p = self.p
        for i in (1, 2, 3):
            x = self.cbr(x, p + "conv%d" % i, p + "bn%d" % i, stride=2 if i == 1 else 1)
        x = F.max_pool2d(x, 3, 2, 1)
        features = []
        for index, (_, stride, dilation) in enumerate(STAGES):
            b = 0
            while "%slayer%d.%d.conv1.weight" % (p, index + 1, b) in self.s:
                q = "%slayer%d.%d." % (p, index + 1, b)
                first = (1 if dilation in (1, 2) else 2) if b == 0 else dilation
                out = self.cbr(x, q + "conv1", q + "bn1", stride=stride if b == 0 else 1, dilation=first)
                out = self.bn(self.conv(out, q + "conv2", dilation=dilation), q + "bn2")
                identity = (self.bn(self.conv(x, q + "downsample.0", stride=stride), q + "downsample.1")
                            if q + "downsample.0.weight" in self.s else x)
                x = F.relu(out + identity)
                b += 1
            features.append(x)
        return features

    def head(self, c4):
        branches = [self.cbr(c4, "head.aspp.b0.0", "head.aspp.b0.1")]
        branches += [self.cbr(c4, "head.aspp.b%d.block.0" % b, "head.aspp.b%d.block.1" % b, dilation=rate)
                     for b, rate in ((1, 12), (2, 24), (3, 36))]
        pooled = self.cbr(F.adaptive_avg_pool2d(c4, 1), "head.aspp.b4.gap.1", "head.aspp.b4.gap.2")
        branches.append(F.interpolate(pooled, c4.shape[2:], mode="bilinear", align_corners=True))
        x = self.cbr(torch.cat(branches, 1), "head.aspp.project.0", "head.aspp.project.1")
        return self.conv(self.cbr(x, "head.block.0", "head.block.1"), "head.block.4")

    def aux(self, c3):
        return self.conv(self.cbr(c3, "auxlayer.block.0", "auxlayer.block.1"), "auxlayer.block.4")


def _diff(label, ours, ref):
    diff = (ours - ref).abs().max().item()
    print("%-26s %-18s max |ours - reference| = %.3g (reference max |value| %.3g)"
          % (label, tuple(ref.shape), diff, ref.abs().max().item()))
    assert ours.shape == ref.shape and ref.abs().max().item() > 1e-2, label
    return diff


def test_cirkd_deeplabv3_r18_logits_equal_reference(tmp_path):
    state = random_state(cirkd_deeplabv3_shapes(False, (2, 2, 2, 2)))
    path = tmp_path / "deeplabv3_resnet18_citys_best_model.pth"
    torch.save(state, path)  # CIRKD's save_checkpoint: torch.save(model.state_dict(), ...)
    model = build_model("deeplabv3_r18", NUM_CLASSES, pretrained=str(path), aux_head=True, **CIRKD_OPTIONS).eval()
    assert_every_tensor_landed(state, model)
    images = torch.randn(*IMAGE_SHAPE, generator=torch.Generator().manual_seed(1))
    ref = Reference(state)
    with torch.no_grad():
        out = model(images)
        ref_features = ref.backbone(images)
        diffs = [_diff("stage %d" % (i + 1), f, r) for i, (f, r) in enumerate(zip(out.features, ref_features))]
        diffs.append(_diff("logits", out.logits, ref.head(ref_features[3])))
        diffs.append(_diff("auxlayer", model.aux_head(out.features[2]), ref.aux(ref_features[2])))
    assert max(diffs) < TOLERANCE


def test_cirkd_teacher_r101_loads_strictly(tmp_path, caplog):
    """The teacher file's every key has a place: strict loading (the teacher path), aux head left out and logged."""
    state = random_state(cirkd_deeplabv3_shapes(True, (3, 4, 23, 3)))
    path = tmp_path / "deeplabv3_resnet101_citys_best_model.pth"
    torch.save(state, path)
    model = build_model("deeplabv3_r101", NUM_CLASSES, **CIRKD_OPTIONS)
    with caplog.at_level(logging.INFO):
        report = load_pretrained(model, str(path), strict=True)
    assert report.target == "model" and not report.missing and not report.unexpected
    assert "left out 8 tensors" in caplog.text and "auxlayer.*" in caplog.text
    assert_every_tensor_landed({k: v for k, v in state.items() if not k.startswith("auxlayer.")}, model)


def test_cirkd_file_into_other_options_names_the_options(tmp_path):
    state = random_state(cirkd_deeplabv3_shapes(False, (2, 2, 2, 2)))
    path = tmp_path / "deeplabv3_resnet18_citys_best_model.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as err:
        build_model("deeplabv3_r18", NUM_CLASSES, pretrained=str(path))
    assert str(err.value).startswith("weights file %s: a CIRKD DeepLabV3 checkpoint needs the model options "
                                     "{deep_stem: true, stem_width: 64, head: cirkd, basic_block_dilation: both, "
                                     "aspp_width: 512}" % path)
    assert "built with {deep_stem: false, stem_width: None, aspp_width: 128}" in str(err.value)


@pytest.mark.parametrize("name,bottleneck,layers", [("deeplabv3_r18", False, (2, 2, 2, 2)),
                                                    ("deeplabv3_r101", True, (3, 4, 23, 3))])
def test_cirkd_imagenet_resnets_fill_the_backbone(tmp_path, name, bottleneck, layers):
    """resnet18-imagenet.pth / resnet101-imagenet.pth: CIRKD's ResNetV1b keys without a prefix; an ImageNet
    classifier, should a file carry one, is dropped."""
    state = random_state(cirkd_resnet_shapes("", bottleneck, layers))
    path = tmp_path / ("%s-imagenet.pth" % name.split("_")[1].replace("r", "resnet"))
    fc = {"fc.weight": torch.zeros(1000, 2048 if bottleneck else 512), "fc.bias": torch.zeros(1000)}
    torch.save(dict(state, **fc), path)
    model = build_model(name, NUM_CLASSES, deep_stem=True)
    report = load_pretrained(model, str(path))
    assert report.target == "backbone" and not report.missing and not report.unexpected
    assert_every_tensor_landed(state, model, prefix="pretrained.")
    if bottleneck:
        return  # the reference forward is written for BasicBlocks; the R18 case checks the dilations
    images = torch.randn(*IMAGE_SHAPE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = model.eval()(images).features
        ref = Reference(state, prefix="").backbone(images)
    assert max(_diff("stage %d" % (i + 1), f, r) for i, (f, r) in enumerate(zip(ours, ref))) < TOLERANCE

