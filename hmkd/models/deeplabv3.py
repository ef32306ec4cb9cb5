"""DeepLabV3 with a dilated ResNet (output stride 8), as CIRKD/HMKD and mmsegmentation build it.

Usage: model = build_model("deeplabv3_r18", num_classes=19, aux_head=True); out = model(images_bchw)

Options (``model.options``): see :class:`DeepLabV3Options`. The defaults are the CIRKD/HMKD student; other
published networks are option sets (docs/weights.md lists each with its weight files):

    CIRKD's DeepLabV3 (its Cityscapes teacher):  deep_stem: true, aspp_width: 512
    mmsegmentation's DeepLabV3 R-x-D8:          deep_stem: true, stem_width: 32, head: mmseg,
                                                 basic_block_dilation: first, aspp_width: 512 (R-18: 128)

The ResNet is timm's (layer3 dilation 2, layer4 dilation 4 at output stride 8), whose parameter names are
torchvision's, so ``resnet18-5c106cde.pth`` and friends load as they are; hmkd.models.deeplabv3_keys renames the
CIRKD and mmsegmentation layouts to these names.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Type, Union

import torch
import torch.nn.functional as F
from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from torch import Tensor, nn

from hmkd.config.typed import check_at_least, check_choice
from hmkd.models import deeplabv3_keys
from hmkd.models.output import FeatureInfo, SegOutput, Tap, attention_taps
from hmkd.models.registry import register_model

HEADS = ("cirkd", "mmseg")
BASIC_BLOCK_DILATIONS = ("both", "first")
RESNET_WIDTHS = (64, 128, 256, 512)


@dataclass
class DeepLabV3Options:
    """``aspp_width``: ASPP and head width (None: 128 for ResNet-18/34, 256 for the Bottleneck ResNets);
    ``aux_head``: the FCN head on stage 3 (needs the aux_ce loss term); ``deep_stem``: three 3x3 convs instead of
    the 7x7, ``stem_width`` wide, then twice that (64: CIRKD's 3->64->64->128; 32: mmseg's ResNetV1c
    3->32->32->64); ``head``: ``cirkd`` (ASPP projected by a 1x1 conv, then a 3x3 conv) or ``mmseg`` (its ASPPHead:
    one 3x3 conv over the concatenated branches); ``basic_block_dilation``: which 3x3 convs of a dilated
    ResNet-18/34 block are dilated, ``both`` (CIRKD, timm) or ``first`` (mmseg); ``output_stride``: 8 (dilated, the
    papers'), 16 or 32; ``stage_widths``: the four ResNet stages' widths before the block expansion (default 64,
    128, 256, 512: the published ResNets; narrower ones make small students, e.g. the distillation benchmark's)."""

    aspp_width: Optional[int] = None
    aux_head: bool = False
    deep_stem: bool = False
    stem_width: int = 64
    head: str = "cirkd"
    basic_block_dilation: str = "both"
    output_stride: int = 8
    base_width: int = 64
    stage_widths: List[int] = field(default_factory=lambda: list(RESNET_WIDTHS))

    def __post_init__(self):
        if self.aspp_width is not None:
            check_at_least("aspp_width", self.aspp_width, 1)
        check_at_least("stem_width", self.stem_width, 1)
        if self.stem_width != 64 and not self.deep_stem:
            raise ValueError("stem_width sets the deep stem's width and the 7x7 stem has none; set deep_stem: true "
                             "or leave stem_width out, got stem_width=%d with deep_stem false" % self.stem_width)
        check_choice("head", self.head, HEADS)
        check_choice("basic_block_dilation", self.basic_block_dilation, BASIC_BLOCK_DILATIONS)
        check_choice("output_stride", self.output_stride, (8, 16, 32))
        check_at_least("base_width", self.base_width, 1)
        if len(self.stage_widths) != 4 or min(self.stage_widths) < 1:
            raise ValueError("stage_widths must be four positive widths, one per ResNet stage, got %r"
                             % (self.stage_widths,))


@dataclass
class DeepLabV3TinyOptions(DeepLabV3Options):
    aspp_width: Optional[int] = 16


def conv_bn_relu(in_ch: int, out_ch: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=dilation * (kernel // 2), dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


def aspp_branches(in_ch: int, width: int, rates: Sequence[int]) -> List[nn.Module]:
    """The 1x1 branch and one dilated 3x3 branch per rate."""
    return [conv_bn_relu(in_ch, width, 1)] + [conv_bn_relu(in_ch, width, 3, dilation=r) for r in rates]


class ASPPPooling(nn.Module):
    """Image-level context: global average, 1x1 conv + BN + ReLU, broadcast back to the map size (from a 1x1 map
    bilinear resizing is a broadcast whatever align_corners says, so CIRKD's True and mmseg's False agree)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = conv_bn_relu(in_ch, out_ch, 1)

    def forward(self, x_bchw: Tensor) -> Tensor:
        pooled = self.conv(F.adaptive_avg_pool2d(x_bchw, 1))
        return F.interpolate(pooled, size=x_bchw.shape[2:], mode="bilinear", align_corners=True)


class ASPP(nn.Module):
    """1x1 branch, three dilated 3x3 branches and image pooling, projected back to ``width`` (dropout 0.5)."""

    def __init__(self, in_ch: int, width: int, rates: Sequence[int] = (12, 24, 36)):
        super().__init__()
        self.branches = nn.ModuleList(aspp_branches(in_ch, width, rates) + [ASPPPooling(in_ch, width)])
        self.project = nn.Sequential(conv_bn_relu(width * len(self.branches), width, 1), nn.Dropout(0.5))

    def forward(self, x_bchw: Tensor) -> Tensor:
        return self.project(torch.cat([branch(x_bchw) for branch in self.branches], dim=1))


class DeepLabHead(nn.Module):
    """CIRKD's head: ASPP, then 3x3 conv + BN + ReLU + dropout 0.1, then the 1x1 classifier."""

    def __init__(self, in_ch: int, width: int, num_classes: int, rates: Sequence[int] = (12, 24, 36)):
        super().__init__()
        self.aspp = ASPP(in_ch, width, rates)
        self.block = nn.Sequential(conv_bn_relu(width, width, 3), nn.Dropout(0.1))
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x_bchw: Tensor) -> Tensor:
        return self.classifier(self.block(self.aspp(x_bchw)))


class MMSegASPPHead(nn.Module):
    """mmsegmentation's ASPPHead: image pooling, then the 1x1 and dilated branches, concatenated in that order;
    one 3x3 conv + BN + ReLU over the concatenation, channel dropout 0.1, the 1x1 classifier."""

    def __init__(self, in_ch: int, width: int, num_classes: int, rates: Sequence[int] = (12, 24, 36)):
        super().__init__()
        self.pool = ASPPPooling(in_ch, width)
        self.branches = nn.ModuleList(aspp_branches(in_ch, width, rates))
        self.bottleneck = conv_bn_relu(width * (len(self.branches) + 1), width, 3)
        self.dropout = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x_bchw: Tensor) -> Tensor:
        maps = [self.pool(x_bchw)] + [branch(x_bchw) for branch in self.branches]
        return self.classifier(self.dropout(self.bottleneck(torch.cat(maps, dim=1))))


class FCNHead(nn.Module):
    """Auxiliary head on c3 (training only): 3x3 conv to in/4 + BN + ReLU + dropout 0.1, 1x1 classifier (CIRKD's
    auxlayer and mmseg's auxiliary FCNHead have these widths)."""

    def __init__(self, in_ch: int, num_classes: int):
        super().__init__()
        self.block = nn.Sequential(conv_bn_relu(in_ch, in_ch // 4, 3), nn.Dropout(0.1))
        self.classifier = nn.Conv2d(in_ch // 4, num_classes, 1)

    def forward(self, x_bchw: Tensor) -> Tensor:
        return self.classifier(self.block(x_bchw))


_HEADS = {"cirkd": DeepLabHead, "mmseg": MMSegASPPHead}


def undilate_second_convs(net: ResNet) -> None:
    """mmseg's BasicBlock dilates only its first 3x3 conv; timm's dilates both. Bottlenecks have one 3x3 conv."""
    for block in net.modules():
        if isinstance(block, BasicBlock):
            block.conv2.dilation, block.conv2.padding = (1, 1), (1, 1)


class DeepLabV3(nn.Module):
    def __init__(self, num_classes: int, block: Type[Union[BasicBlock, Bottleneck]], layers: Sequence[int],
                 aspp_width: Optional[int] = None, aux_head: bool = False, deep_stem: bool = False,
                 stem_width: int = 64, head: str = "cirkd", basic_block_dilation: str = "both",
                 output_stride: int = 8, base_width: int = 64, stage_widths: Sequence[int] = RESNET_WIDTHS):
        super().__init__()
        stem = dict(stem_type="deep", stem_width=stem_width) if deep_stem else {}
        self.backbone = ResNet(block=block, layers=list(layers), num_classes=0, global_pool="",
                               output_stride=output_stride, base_width=base_width, channels=tuple(stage_widths),
                               **stem)
        if basic_block_dilation == "first":
            undilate_second_convs(self.backbone)
        expansion = block.expansion
        channels = [c * expansion for c in stage_widths]
        reductions = [4, 8, min(16, output_stride), min(32, output_stride)]
        self.feature_info = [FeatureInfo(c, r) for c, r in zip(channels, reductions)]
        self.logits_reduction = output_stride
        width = aspp_width if aspp_width is not None else (128 if channels[3] <= 512 else 256)
        self.decode_head = _HEADS[head](channels[3], width, num_classes)
        self.aux_head = FCNHead(channels[2], num_classes) if aux_head else None
        # What a foreign checkpoint layout must agree with (hmkd.models.deeplabv3_keys checks it before renaming).
        self.arch = dict(deep_stem=deep_stem, stem_width=stem_width if deep_stem else None, head=head,
                         basic_block_dilation=basic_block_dilation, aspp_width=width)

    def forward(self, images_bchw: Tensor, with_logits: bool = True, taps: Sequence[Tap] = ()) -> SegOutput:
        """``taps``: a CNN has its stage outputs only; a request for an attention tap is a caller's bug."""
        if attention_taps(taps):
            raise ValueError("DeepLabV3 has no attention taps (asked for %s); only transformers do"
                             % ", ".join(t.describe() for t in attention_taps(taps)))
        net = self.backbone
        x_bchw = net.maxpool(net.act1(net.bn1(net.conv1(images_bchw))))
        features = []
        for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
            x_bchw = layer(x_bchw)
            features.append(x_bchw)
        if not with_logits:
            return SegOutput(None, features)
        logits = self.decode_head(features[3])
        aux = self.aux_head(features[2]) if self.aux_head is not None and self.training else None
        return SegOutput(logits, features, aux)


def checkpoint_filter_fn(state_dict: Dict[str, Tensor], model: DeepLabV3) -> Tuple[nn.Module, Dict[str, Tensor]]:
    """Map a checkpoint to (module to load into, state dict in our names).

    This project's checkpoints load into the model as they are; CIRKD and mmsegmentation whole-model checkpoints
    are renamed into the model (hmkd.models.deeplabv3_keys); ImageNet ResNets (torchvision's, CIRKD's deep-stem
    ones) load into the backbone with their classifier ``fc.*`` dropped.
    """
    layout = deeplabv3_keys.detect_layout(state_dict)
    if layout == "hmkd":
        return model, state_dict
    if layout == "imagenet":
        return model.backbone, deeplabv3_keys.imagenet_to_backbone(state_dict)
    return model, deeplabv3_keys.to_model(layout, state_dict, model)


@register_model("cnn", DeepLabV3Options, checkpoint_filter_fn)
def deeplabv3_r18(num_classes: int, **options) -> DeepLabV3:
    return DeepLabV3(num_classes, BasicBlock, (2, 2, 2, 2), **options)


@register_model("cnn", DeepLabV3Options, checkpoint_filter_fn)
def deeplabv3_r50(num_classes: int, **options) -> DeepLabV3:
    return DeepLabV3(num_classes, Bottleneck, (3, 4, 6, 3), **options)


@register_model("cnn", DeepLabV3Options, checkpoint_filter_fn)
def deeplabv3_r101(num_classes: int, **options) -> DeepLabV3:
    return DeepLabV3(num_classes, Bottleneck, (3, 4, 23, 3), **options)


@register_model("cnn", DeepLabV3TinyOptions, checkpoint_filter_fn)
def deeplabv3_tiny(num_classes: int, **options) -> DeepLabV3:
    """Test-sized: a ResNet with one BasicBlock per stage, same strides and head structure as R18 (ASPP width 16)."""
    return DeepLabV3(num_classes, BasicBlock, (1, 1, 1, 1), **options)
