"""mmsegmentation SegFormer checkpoints (0.x and 1.x) in this package's SegFormer names.

Usage: if is_mmseg_segformer(state): state = convert_mmseg_state_dict(state)   # then load into head="mmseg"

mmseg's MixVisionTransformer (mmseg/models/backbones/mit.py) nests each stage as ``layers.{i}.{0: patch embedding,
1: blocks, 2: LayerNorm}``, packs the query/key/value projections into ``nn.MultiheadAttention``'s ``in_proj_*``
(q from the tokens, k and v from the spatially reduced tokens: the same weights, rows [q; k; v]) and writes Mix-FFN as
1x1 convolutions (``ffn.layers.{0,1,4}``: fc1, depthwise 3x3, fc2). Its SegformerHead keys (``convs.{k}.conv/bn``,
``fusion_conv.conv/bn``) are ours for ``head: mmseg``; ``conv_seg`` is our ``classifier``. mmseg 1.x keeps these
keys (its data preprocessor's mean/std are non-persistent buffers, so they are not in the file); only the wrapping
differs (mmengine's ``meta``, ``message_hub``, ``optimizer``), which hmkd.models.weights.read_state_dict unwraps.
Whole segmentors carry the ``backbone.`` / ``decode_head.`` prefixes; mmseg's converted ImageNet encoders
(``mit_b0_20220624-7e0fe6dd.pth`` ...) are the bare backbone.
"""
import re
from typing import Dict, Tuple

from torch import Tensor

_STAGE = re.compile(r"^(backbone\.)?layers\.(\d+)\.([012])\.(.+)$")
_BLOCK = re.compile(r"^(\d+)\.(.+)$")
_BLOCK_RENAMES = {
    "attn.attn.out_proj.": "attn.proj.",
    "ffn.layers.0.": "mlp.fc1.",
    "ffn.layers.1.": "mlp.dwconv.dwconv.",
    "ffn.layers.4.": "mlp.fc2.",
    "attn.sr.": "attn.sr.",
    "attn.norm.": "attn.norm.",
    "norm1.": "norm1.",
    "norm2.": "norm2.",
}
_LINEAR_FROM_CONV = ("mlp.fc1.weight", "mlp.fc2.weight")  # 1x1 conv weights (O, I, 1, 1) -> linear (O, I)


def is_mmseg_segformer(state_dict: Dict[str, Tensor]) -> bool:
    """mmseg's MiT layout: the first stage's patch embedding is ``layers.0.0.projection``."""
    return any(k in state_dict for k in ("backbone.layers.0.0.projection.weight", "layers.0.0.projection.weight"))


def convert_mmseg_state_dict(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Our names for an mmseg SegFormer state dict (always ``backbone.``-prefixed; the head's keys kept when present).

    Keys outside the MiT and SegformerHead layouts (an auxiliary head, say) pass through unchanged, so loading
    reports them as unexpected instead of dropping them silently.
    """
    out: Dict[str, Tensor] = {}
    for key, value in state_dict.items():
        stage = _STAGE.match(key)
        if stage:
            for name, tensor in _convert_stage_key(int(stage.group(2)), int(stage.group(3)), stage.group(4), value):
                out["backbone." + name] = tensor
        elif key.startswith("decode_head.conv_seg."):
            out["decode_head.classifier." + key[len("decode_head.conv_seg."):]] = value
        else:
            out[key] = value
    return out


def _convert_stage_key(stage: int, part: int, rest: str, value: Tensor) -> Tuple[Tuple[str, Tensor], ...]:
    if part == 0:  # PatchEmbed: projection (conv) + norm
        return (("patch_embed%d.%s" % (stage + 1, rest.replace("projection.", "proj.", 1)), value),)
    if part == 2:
        return (("norm%d.%s" % (stage + 1, rest), value),)
    block = _BLOCK.match(rest)
    if not block:
        raise ValueError("unrecognised mmsegmentation MiT key layers.%d.1.%s" % (stage, rest))
    prefix = "block%d.%s." % (stage + 1, block.group(1))
    inner = block.group(2)
    if inner.startswith("attn.attn.in_proj_"):  # rows [q; k; v]: q is ours, [k; v] is our packed kv
        param = "weight" if inner.endswith("weight") else "bias"
        width = value.shape[0] // 3
        return ((prefix + "attn.q." + param, value[:width]), (prefix + "attn.kv." + param, value[width:]))
    for old, new in _BLOCK_RENAMES.items():
        if inner.startswith(old):
            name = new + inner[len(old):]
            if name in _LINEAR_FROM_CONV:
                value = value.reshape(value.shape[0], value.shape[1])
            return ((prefix + name, value),)
    raise ValueError("unrecognised mmsegmentation MiT key layers.%d.1.%s" % (stage, rest))
