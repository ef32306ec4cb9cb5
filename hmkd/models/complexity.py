"""Parameters and FLOPs of a segmentor, from mmcv-full's complexity counter plus what it cannot see.

Usage: info = model_complexity(build_model("segformer_b4", 19), (512, 1024))

mmcv counts modules (convs, linears, norms, pools, ``nn.Upsample``) and reports multiply-accumulates as "FLOPs",
the convention of the segmentation literature. It does not see tensor products written as ``@`` inside a module,
so for SegFormer it misses the attention products Q K^T and A V (about 34 GMACs of SegFormer-B4 at 512x1024).
We add those with our own hook on the attention module. Still not counted, by either: ``F.interpolate`` calls,
softmax and GELU (elementwise, well under 1% for these models).
"""
import warnings
from typing import Dict, Tuple

import torch
from torch import nn

from hmkd.models.segformer import EfficientSelfAttention


def _attention_macs_hook(module: EfficientSelfAttention, inputs, _output) -> None:
    x_bnc, height, width = inputs
    batch, tokens, dim = x_bnc.shape
    kv_tokens = tokens if module.sr_ratio == 1 else (height // module.sr_ratio) * (width // module.sr_ratio)
    module.__attention_macs__ += 2 * batch * tokens * kv_tokens * dim  # Q K^T and A V, summed over heads


def model_complexity(model: nn.Module, size_hw: Tuple[int, int]) -> Dict[str, float]:
    """Parameters and MACs for one image of ``size_hw`` in eval mode (auxiliary heads do not run)."""
    with warnings.catch_warnings():  # mmcv 1.7 warns about its 2.0 renaming at every import
        warnings.simplefilter("ignore", UserWarning)
        from mmcv.cnn import get_model_complexity_info  # slow to import: only this command needs it

    was_training = model.training
    model.eval()
    attention = [m for m in model.modules() if isinstance(m, EfficientSelfAttention)]
    handles = []
    for module in attention:
        module.__attention_macs__ = 0
        handles.append(module.register_forward_hook(_attention_macs_hook))
    try:
        with torch.no_grad():
            mmcv_macs, params = get_model_complexity_info(model, (3,) + tuple(size_hw), print_per_layer_stat=False,
                                                          as_strings=False)
        attention_macs = sum(m.__attention_macs__ for m in attention)
    finally:
        for handle in handles:
            handle.remove()
        for module in attention:
            del module.__attention_macs__
        model.train(was_training)
    return {"params": int(params), "flops": int(mmcv_macs + attention_macs), "flops_mmcv": int(mmcv_macs),
            "flops_attention": int(attention_macs)}
