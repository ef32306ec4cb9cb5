"""What every segmentor returns: logits and its four stage feature maps, nothing model-specific.

Usage: out = model(images_bchw); out.logits (B, K, h, w); out.features[i] (B, C_i, H/s_i, W/s_i).
       model(images_bchw, with_logits=False) skips the decode head: logits is None (a teacher whose logits no loss
       term reads; SegFormer-B4's all-MLP head is about 40% of its forward).
"""
from typing import List, NamedTuple, Optional

import torch
from torch import Tensor


class SegOutput(NamedTuple):
    """``aux_logits`` is set only by models with an auxiliary head, in training mode; ``logits`` is None only when
    the caller asked for features alone."""

    logits: Optional[Tensor]
    features: List[Tensor]
    aux_logits: Optional[Tensor] = None

    def float(self) -> "SegOutput":
        """Every tensor in float32 at least: a teacher run under autocast hands the loss terms the same dtypes as
        a float32 one, whatever the student's precision."""
        def widen(t: Optional[Tensor]) -> Optional[Tensor]:
            return t if t is None else t.to(torch.promote_types(t.dtype, torch.float32))
        return SegOutput(widen(self.logits), [widen(f) for f in self.features], widen(self.aux_logits))


class FeatureInfo(NamedTuple):
    """Declared width and stride of one stage map, so alignment modules never probe shapes with dummy tensors."""

    channels: int
    reduction: int
