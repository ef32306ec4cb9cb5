"""Key layouts of the DeepLabV3 / ResNet checkpoints we read, renamed to hmkd.models.deeplabv3's names.

Usage: layout = detect_layout(state); state = to_model(layout, state, model)   # or imagenet_to_backbone(state)

Layouts (docs/weights.md has each with its source and input normalisation):
    hmkd      this project's checkpoints: ``backbone.*`` (timm ResNet), ``decode_head.*``, ``aux_head.*``
    mmseg     mmsegmentation 0.x and 1.x EncoderDecoder (ResNetV1c + ASPPHead): ``backbone.stem.*``, ``decode_head.``
              ``image_pool/aspp_modules/bottleneck/conv_seg``, training-only ``auxiliary_head.*``; 1.x adds nothing to the state dict
              (its data_preprocessor mean/std are non-persistent buffers)
    cirkd     CIRKD's DeepLabV3 (models/deeplabv3.py + models/base_models/resnet.py): ``pretrained.*``,
              ``head.aspp.b0..b4``, ``head.block.*``, training-only ``auxlayer.*``
    imagenet  an ImageNet ResNet for the backbone: torchvision's (7x7 stem), CIRKD's deep stem
              (conv1/bn1/conv2/bn2/conv3/bn3) or mmcv's ResNetV1c (``stem.*``); the classifier ``fc.*`` is dropped

A whole-model layout also fixes the architecture: :func:`to_model` checks the model's options against what the file
was built with and names the options to set, because some differences (which convs are dilated) change no shape.
"""
import logging
import re
from typing import Dict, List, Optional, Sequence, Tuple

from timm.models.resnet import BasicBlock
from torch import Tensor, nn

from hmkd.models.weights import WeightsError

log = logging.getLogger(__name__)

Rules = Sequence[Tuple[str, str]]


def _conv_module(src: str, dst: str) -> List[Tuple[str, str]]:
    """mmcv's ConvModule (``.conv`` + ``.bn``) onto our conv_bn_relu Sequential (``.0`` + ``.1``)."""
    return [(r"^%s\.conv\." % src, dst + ".0."), (r"^%s\.bn\." % src, dst + ".1.")]


def _cirkd_stem(src: str, dst: str) -> List[Tuple[str, str]]:
    """CIRKD's deep stem (separate conv1/bn1/conv2/bn2/conv3/bn3) onto timm's conv1 Sequential + bn1."""
    names = (("conv1", "conv1.0"), ("bn1", "conv1.1"), ("conv2", "conv1.3"), ("bn2", "conv1.4"),
             ("conv3", "conv1.6"), ("bn3", "bn1"))
    return [(r"^%s%s\." % (src, old), "%s%s." % (dst, new)) for old, new in names]


def _mmcv_stem(src: str, dst: str) -> List[Tuple[str, str]]:
    """mmcv's ResNetV1c stem Sequential (conv, bn, relu) x 3 onto timm's conv1 Sequential (its last BN is bn1)."""
    return [(r"^%sstem\.7\." % src, dst + "bn1."), (r"^%sstem\.([01346])\." % src, dst + "conv1.\\1.")]


_RULES: Dict[str, Rules] = {
    "mmseg": _mmcv_stem(r"backbone\.", "backbone.") + [
        (r"^decode_head\.image_pool\.1\.conv\.", "decode_head.pool.conv.0."),
        (r"^decode_head\.image_pool\.1\.bn\.", "decode_head.pool.conv.1."),
        (r"^decode_head\.aspp_modules\.(\d+)\.conv\.", r"decode_head.branches.\1.0."),
        (r"^decode_head\.aspp_modules\.(\d+)\.bn\.", r"decode_head.branches.\1.1."),
        (r"^decode_head\.conv_seg\.", "decode_head.classifier."),
        (r"^auxiliary_head\.conv_seg\.", "aux_head.classifier."),
    ] + _conv_module(r"decode_head\.bottleneck", "decode_head.bottleneck")
      + _conv_module(r"auxiliary_head\.convs\.0", "aux_head.block.0"),
    "cirkd": _cirkd_stem(r"pretrained\.", "backbone.") + [
        (r"^pretrained\.layer", "backbone.layer"),
        (r"^head\.aspp\.b0\.([01])\.", r"decode_head.aspp.branches.0.\1."),
        (r"^head\.aspp\.b([123])\.block\.([01])\.", r"decode_head.aspp.branches.\1.\2."),
        (r"^head\.aspp\.b4\.gap\.1\.", "decode_head.aspp.branches.4.conv.0."),
        (r"^head\.aspp\.b4\.gap\.2\.", "decode_head.aspp.branches.4.conv.1."),
        (r"^head\.aspp\.project\.([01])\.", r"decode_head.aspp.project.0.\1."),
        (r"^head\.block\.([01])\.", r"decode_head.block.0.\1."),
        (r"^head\.block\.4\.", "decode_head.classifier."),
        (r"^auxlayer\.block\.([01])\.", r"aux_head.block.0.\1."),
        (r"^auxlayer\.block\.4\.", "aux_head.classifier."),
    ],
    "imagenet_cirkd": _cirkd_stem("", ""),
    "imagenet_mmcv": _mmcv_stem("", ""),
    "imagenet_torchvision": [],
}

# Parts a file may carry that our model does not need, by their names after renaming: the training-only auxiliary
# head when the model has none, and mmseg 1.x's data_preprocessor should a file keep its mean/std.
_AUX_PREFIX = "aux_head."
_DROPPED_PREFIXES = ("data_preprocessor.",)


def detect_layout(state: Dict[str, Tensor]) -> str:
    """Which layout ``state`` is in: mmseg, cirkd, hmkd or imagenet (see the module docstring)."""
    if "backbone.stem.0.weight" in state or "decode_head.image_pool.1.conv.weight" in state:
        return "mmseg"  # ResNetV1c or ASPPHead: other mmseg models (SegFormer) also have decode_head.conv_seg
    if any(k.startswith(("pretrained.", "head.aspp.")) for k in state):
        return "cirkd"
    if any(k.startswith("backbone.") for k in state):
        return "hmkd"
    return "imagenet"


def renamed_keys(keys: Sequence[str], rules: Rules) -> Dict[str, str]:
    """Old key -> new key, each renamed by the first rule that matches it; keys no rule matches stay as they are,
    so load_pretrained reports them as unexpected."""
    compiled = [(re.compile(pattern), repl) for pattern, repl in rules]
    names = {}
    for key in keys:
        names[key] = next((pattern.sub(repl, key, count=1) for pattern, repl in compiled if pattern.match(key)), key)
    return names


def rename(state: Dict[str, Tensor], rules: Rules) -> Dict[str, Tensor]:
    return {new: state[old] for old, new in renamed_keys(list(state), rules).items()}


def imagenet_layout(state: Dict[str, Tensor]) -> str:
    """Which ImageNet ResNet: CIRKD's deep stem, mmcv's ResNetV1c or torchvision's 7x7 stem."""
    if "conv2.weight" in state and "conv3.weight" in state:
        return "imagenet_cirkd"
    return "imagenet_mmcv" if "stem.0.weight" in state else "imagenet_torchvision"


def imagenet_to_backbone(state: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """An ImageNet ResNet in backbone names, its ImageNet classifier left out."""
    return rename({k: v for k, v in state.items() if not k.startswith("fc.")}, _RULES[imagenet_layout(state)])


def _shape(state: Dict[str, Tensor], key: str, dim: int) -> Optional[int]:
    return int(state[key].shape[dim]) if key in state else None


def required_arch(layout: str, state: Dict[str, Tensor], basic_blocks: bool) -> Dict[str, object]:
    """The model options the file's network was built with (widths read from the file's tensors)."""
    if layout == "mmseg":
        arch = dict(deep_stem=True, stem_width=_shape(state, "backbone.stem.0.weight", 0), head="mmseg",
                    basic_block_dilation="first", aspp_width=_shape(state, "decode_head.conv_seg.weight", 1))
    else:
        arch = dict(deep_stem=True, stem_width=_shape(state, "pretrained.conv1.weight", 0), head="cirkd",
                    basic_block_dilation="both", aspp_width=_shape(state, "head.block.4.weight", 1))
    if not basic_blocks:  # a Bottleneck ResNet has no second 3x3 conv: either value builds the same network
        del arch["basic_block_dilation"]
    return {k: v for k, v in arch.items() if v is not None}


def _yaml(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def check_arch(layout: str, state: Dict[str, Tensor], model: nn.Module) -> None:
    """WeightsError naming the options to set when ``model`` is not the network the file was saved from."""
    basic_blocks = any(isinstance(m, BasicBlock) for m in model.backbone.modules())
    required = required_arch(layout, state, basic_blocks)
    wrong = {k: v for k, v in required.items() if model.arch.get(k) != v}
    if wrong:
        source = {"mmseg": "an mmsegmentation DeepLabV3", "cirkd": "a CIRKD DeepLabV3"}[layout]
        raise WeightsError("%s checkpoint needs the model options {%s} (set them in model.options or "
                           "teacher.options); the model was built with {%s}" % (
                               source, ", ".join("%s: %s" % (k, _yaml(v)) for k, v in required.items()),
                               ", ".join("%s: %s" % (k, _yaml(model.arch.get(k))) for k in wrong)))


def to_model(layout: str, state: Dict[str, Tensor], model: nn.Module) -> Dict[str, Tensor]:
    """A whole-model checkpoint in ``layout``, checked against ``model``'s options, in the model's names; the parts
    the model does not use (auxiliary head of a model without one) are left out and logged."""
    check_arch(layout, state, model)
    names = renamed_keys(list(state), _RULES[layout])
    dropped = _DROPPED_PREFIXES if getattr(model, "aux_head", None) is not None else _DROPPED_PREFIXES + (_AUX_PREFIX,)
    ignored = sorted(old for old, new in names.items() if new.startswith(dropped))
    if ignored:
        log.info("left out %d tensors the model does not use (%s: training-only auxiliary head or preprocessing; "
                 "build with aux_head: true to load the auxiliary head)", len(ignored),
                 ", ".join(sorted({k.split(".")[0] + ".*" for k in ignored})))
    return {new: state[old] for old, new in names.items() if old not in ignored}
