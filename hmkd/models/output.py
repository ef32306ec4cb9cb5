"""What every segmentor returns: logits and its four stage feature maps, nothing model-specific.

Usage: out = model(images_bchw); out.logits (B, K, h, w); out.features[i] (B, C_i, H/s_i, W/s_i).
       model(images_bchw, with_logits=False) skips the decode head: logits is None (a teacher whose logits no loss
       term reads; SegFormer-B4's all-MLP head is about 40% of its forward).
"""
from typing import List, NamedTuple, Optional

from torch import Tensor


class SegOutput(NamedTuple):
    """``aux_logits`` is set only by models with an auxiliary head, in training mode; ``logits`` is None only when
    the caller asked for features alone."""

    logits: Optional[Tensor]
    features: List[Tensor]
    aux_logits: Optional[Tensor] = None


class FeatureInfo(NamedTuple):
    """Declared width and stride of one stage map, so alignment modules never probe shapes with dummy tensors."""

    channels: int
    reduction: int
