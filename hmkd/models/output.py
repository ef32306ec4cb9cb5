"""What every segmentor returns: logits and its four stage feature maps, nothing model-specific.

Usage: out = model(images_bchw); out.logits (B, K, h, w); out.features[i] (B, C_i, H/s_i, W/s_i).
       model(images_bchw, with_logits=False) skips the decode head: logits is None (a teacher whose logits no loss
       term reads; SegFormer-B4's all-MLP head is about 40% of its forward).
       out = model(images_bchw, taps=(Tap(0, "attn_second_last"),)); out.feature(Tap(0, "attn_second_last"))

A :class:`Tap` names one map of a stage that a loss term reads. ``output`` is the stage map every model returns
in ``features``; the others exist on transformers only and are computed only when asked for (they cost extra
attention passes), returned in ``taps``. They are the maps the HMKD authors feed their alignments with (method spec,
"The authors' arithmetic, exactly"): each block's attention entry ``attn(norm1(x))`` recomputed on x after the
attention residual, in a list that starts with the stage's patch-embedding tokens; ``attn_mean`` is the mean of the
blocks' entries (the patch-embedding entry left out), ``attn_second_last`` is the list's second-to-last entry.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence

import torch
from torch import Tensor


TAP_KINDS = ("output", "attn_mean", "attn_second_last")


class Tap(NamedTuple):
    """Which map of stage ``stage`` (0-based) a term reads: ``kind`` is one of TAP_KINDS."""

    stage: int
    kind: str = "output"

    def describe(self) -> str:
        return "stage %d %s" % (self.stage + 1, self.kind)


def attention_taps(taps: Sequence[Tap]) -> List[Tap]:
    """The taps that a model must compute on request (every kind but ``output``), each once, in stage order."""
    return sorted({tap for tap in taps if tap.kind != "output"})


class SegOutput(NamedTuple):
    """``aux_logits`` is set only by models with an auxiliary head, in training mode; ``logits`` is None only when
    the caller asked for features alone; ``taps`` holds the requested non-``output`` taps (None: none asked)."""

    logits: Optional[Tensor]
    features: List[Tensor]
    aux_logits: Optional[Tensor] = None
    taps: Optional[Dict[Tap, Tensor]] = None

    def feature(self, tap: Tap) -> Tensor:
        """The map ``tap`` names; a tap the forward was not asked for is an internal error (KeyError)."""
        if tap.kind == "output":
            return self.features[tap.stage]
        return (self.taps or {})[tap]

    def float(self) -> "SegOutput":
        """Every tensor in float32 at least: a teacher run under autocast hands the loss terms the same dtypes as
        a float32 one, whatever the student's precision."""
        def widen(t: Optional[Tensor]) -> Optional[Tensor]:
            return t if t is None else t.to(torch.promote_types(t.dtype, torch.float32))
        taps = None if self.taps is None else {tap: widen(t) for tap, t in self.taps.items()}
        return SegOutput(widen(self.logits), [widen(f) for f in self.features], widen(self.aux_logits), taps)


class FeatureInfo(NamedTuple):
    """Declared width and stride of one stage map, so alignment modules never probe shapes with dummy tensors."""

    channels: int
    reduction: int
