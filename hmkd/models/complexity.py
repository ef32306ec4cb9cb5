"""Parameters and FLOPs of a segmentor: mmcv-full's complexity counter plus what it cannot see (legacy stack), or
torch's own operator counter where mmcv-full is not installed (modern stack).

Usage: info = model_complexity(build_model("segformer_b4", 19), (512, 1024))   # info["counter"]: mmcv | torch

mmcv counts modules (convs, linears, norms, pools, ``nn.Upsample``) and reports multiply-accumulates as "FLOPs",
the convention of the segmentation literature. It does not see tensor products written as ``@`` inside a module,
so for SegFormer it misses the attention products Q K^T and A V (about 34 GMACs of SegFormer-B4 at 512x1024).
We add those with our own hook on the attention module. Still not counted, by either: ``F.interpolate`` calls,
softmax and GELU (elementwise, well under 1% for these models). torch's counter sees every convolution and matrix
product (Q K^T and A V included) but no normalisation, pooling or activation.
"""
import warnings
from typing import Any, Dict, Tuple

import torch
from torch import nn

from hmkd.models.segformer import EfficientSelfAttention


def _attention_macs_hook(module: EfficientSelfAttention, inputs, _output) -> None:
    x_bnc, height, width = inputs
    batch, tokens, dim = x_bnc.shape
    kv_tokens = tokens if module.sr_ratio == 1 else (height // module.sr_ratio) * (width // module.sr_ratio)
    module.__attention_macs__ += 2 * batch * tokens * kv_tokens * dim  # Q K^T and A V, summed over heads


def _mmcv_macs(model: nn.Module, size_hw: Tuple[int, int]) -> int:
    """mmcv-full's module counter (the legacy stack's); ImportError where mmcv-full is not installed."""
    with warnings.catch_warnings():  # mmcv 1.7 warns about its 2.0 renaming at every import
        warnings.simplefilter("ignore", UserWarning)
        from mmcv.cnn import get_model_complexity_info  # slow to import: only the cost counters need it

    macs, _ = get_model_complexity_info(model, (3,) + tuple(size_hw), print_per_layer_stat=False, as_strings=False)
    return int(macs)


def _torch_macs(model: nn.Module, size_hw: Tuple[int, int]) -> int:
    """torch's own operator counter (torch >= 2.1): convolutions and matrix products, the attention ones included;
    it reports FLOPs as 2 x multiply-accumulates."""
    from torch.utils.flop_counter import FlopCounterMode

    param = next(model.parameters())
    images = torch.zeros((1, 3) + tuple(size_hw), dtype=param.dtype, device=param.device)
    with FlopCounterMode(display=False) as mode:
        model(images)
    return int(mode.get_total_flops()) // 2


def flop_counter() -> str:
    """"mmcv" where mmcv-full is installed (the legacy stack), else "torch" (torch.utils.flop_counter)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            import mmcv.cnn  # noqa: F401
        return "mmcv"
    except ImportError:
        pass
    try:
        import torch.utils.flop_counter  # noqa: F401
        return "torch"
    except ImportError:
        raise ImportError("no FLOP counter here: install mmcv-full 1.7 (torch 1.x) or use torch >= 2.1")


def model_complexity(model: nn.Module, size_hw: Tuple[int, int]) -> Dict[str, Any]:
    """Parameters and MACs for one image of ``size_hw`` in eval mode (auxiliary heads do not run), with the name of
    the counter used; ``flops_attention`` is the attention products' share, counted by our own hook."""
    counter = flop_counter()
    was_training = model.training
    model.eval()
    attention = [m for m in model.modules() if isinstance(m, EfficientSelfAttention)]
    handles = []
    for module in attention:
        module.__attention_macs__ = 0
        handles.append(module.register_forward_hook(_attention_macs_hook))
    try:
        with torch.no_grad():
            macs = _mmcv_macs(model, size_hw) if counter == "mmcv" else _torch_macs(model, size_hw)
        attention_macs = sum(m.__attention_macs__ for m in attention)
    finally:
        for handle in handles:
            handle.remove()
        for module in attention:
            del module.__attention_macs__
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if counter == "mmcv":  # mmcv does not see products written as @: ours are added
        return {"params": params, "flops": macs + attention_macs, "flops_mmcv": macs,
                "flops_attention": attention_macs, "counter": counter}
    return {"params": params, "flops": macs, "flops_attention": attention_macs, "counter": counter}
