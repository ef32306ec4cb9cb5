"""DeepLabV3 with a dilated ResNet (output stride 8), as used by CIRKD and HMKD.

Usage: model = build_model("deeplabv3_r18", num_classes=19, aux_head=True); out = model(images_bchw)

Options (``model.options``): see :class:`DeepLabV3Options`.

The ResNet is timm's (layer3 dilation 2, layer4 dilation 4 at output stride 8), whose parameter names are
torchvision's, so ``resnet18-5c106cde.pth`` and friends load as they are. ``deep_stem=True`` gives the
three-3x3-conv stem (3->64->64->128) of the ImageNet weights CIRKD/HMKD start from; :func:`checkpoint_filter_fn`
renames that checkpoint layout (conv1/bn1/conv2/bn2/conv3/bn3) to timm's.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple, Type, Union

import torch
import torch.nn.functional as F
from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from torch import Tensor, nn

from hmkd.config.typed import check_at_least, check_choice
from hmkd.models.output import FeatureInfo, SegOutput
from hmkd.models.registry import register_model


@dataclass
class DeepLabV3Options:
    """``aspp_width``: ASPP and head width (None: 128 for ResNet-18/34, 256 for the Bottleneck ResNets);
    ``aux_head``: the FCN head on stage 3 (needs the aux_ce loss term); ``deep_stem``: three 3x3 convs instead of
    the 7x7 (the CIRKD/HMKD ImageNet weights); ``output_stride``: 8 (dilated, the papers'), 16 or 32."""

    aspp_width: Optional[int] = None
    aux_head: bool = False
    deep_stem: bool = False
    output_stride: int = 8
    base_width: int = 64

    def __post_init__(self):
        if self.aspp_width is not None:
            check_at_least("aspp_width", self.aspp_width, 1)
        check_choice("output_stride", self.output_stride, (8, 16, 32))
        check_at_least("base_width", self.base_width, 1)


@dataclass
class DeepLabV3TinyOptions(DeepLabV3Options):
    aspp_width: Optional[int] = 16


def conv_bn_relu(in_ch: int, out_ch: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=dilation * (kernel // 2), dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class ASPPPooling(nn.Module):
    """Image-level context: global average, 1x1 conv + BN + ReLU, broadcast back to the map size."""

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
        self.branches = nn.ModuleList([conv_bn_relu(in_ch, width, 1)] +
                                      [conv_bn_relu(in_ch, width, 3, dilation=r) for r in rates] +
                                      [ASPPPooling(in_ch, width)])
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


class FCNHead(nn.Module):
    """Auxiliary head on c3 (training only): 3x3 conv to in/4 + BN + ReLU + dropout 0.1, 1x1 classifier."""

    def __init__(self, in_ch: int, num_classes: int):
        super().__init__()
        self.block = nn.Sequential(conv_bn_relu(in_ch, in_ch // 4, 3), nn.Dropout(0.1))
        self.classifier = nn.Conv2d(in_ch // 4, num_classes, 1)

    def forward(self, x_bchw: Tensor) -> Tensor:
        return self.classifier(self.block(x_bchw))


class DeepLabV3(nn.Module):
    def __init__(self, num_classes: int, block: Type[Union[BasicBlock, Bottleneck]], layers: Sequence[int],
                 aspp_width: Optional[int] = None, aux_head: bool = False, deep_stem: bool = False,
                 output_stride: int = 8, base_width: int = 64):
        super().__init__()
        stem = dict(stem_type="deep", stem_width=64) if deep_stem else {}
        self.backbone = ResNet(block=block, layers=list(layers), num_classes=0, global_pool="",
                               output_stride=output_stride, base_width=base_width, **stem)
        expansion = block.expansion
        channels = [c * expansion for c in (64, 128, 256, 512)]
        reductions = [4, 8, min(16, output_stride), min(32, output_stride)]
        self.feature_info = [FeatureInfo(c, r) for c, r in zip(channels, reductions)]
        self.logits_reduction = output_stride
        width = aspp_width if aspp_width is not None else (128 if channels[3] <= 512 else 256)
        self.decode_head = DeepLabHead(channels[3], width, num_classes)
        self.aux_head = FCNHead(channels[2], num_classes) if aux_head else None

    def forward(self, images_bchw: Tensor, with_logits: bool = True) -> SegOutput:
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


_DEEP_STEM_RENAMES = {"conv1.": "conv1.0.", "bn1.": "conv1.1.", "conv2.": "conv1.3.", "bn2.": "conv1.4.",
                      "conv3.": "conv1.6.", "bn3.": "bn1."}


def checkpoint_filter_fn(state_dict: Dict[str, Tensor], model: DeepLabV3) -> Tuple[nn.Module, Dict[str, Tensor]]:
    """Map a checkpoint to (module to load into, state dict in our names).

    Whole-model checkpoints (keys under ``backbone.``) load into the model; torchvision-format ResNets load into
    the backbone with their ImageNet classifier ``fc.*`` dropped; deep-stem checkpoints in the CIRKD layout have
    their stem renamed to timm's Sequential.
    """
    if any(k.startswith("backbone.") for k in state_dict):
        return model, state_dict
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    if "conv3.weight" in state_dict and "conv2.weight" in state_dict:
        renamed = {}
        for key, value in state_dict.items():
            for old, new in _DEEP_STEM_RENAMES.items():
                if key.startswith(old):
                    key = new + key[len(old):]
                    break
            renamed[key] = value
        state_dict = renamed
    return model.backbone, state_dict


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
