"""Parameters and FLOPs of a segmentor: mmcv's complexity counter plus what it cannot see (legacy stack, and the
modern venv's mmcv without ops), or torch's own operator counter where mmcv is not installed (the modern image).

Usage: info = model_complexity(build_model("segformer_b4", 19), (512, 1024))   # info["counter"]: mmcv | torch
       info = model_complexity(model, (512, 1024), counter="torch")            # one counter by name
       model_complexity(shapes_only(build_model(name, 19)), size)              # no arithmetic runs (torch 2)

mmcv counts modules (convs, linears, norms, pools, ``nn.Upsample``) and reports multiply-accumulates as "FLOPs",
the convention of the segmentation literature. It does not see tensor products written as ``@`` inside a module,
so for SegFormer it misses the attention products Q K^T and A V (about 34 GMACs of SegFormer-B4 at 512x1024).
We add those with our own hook on the attention module. Still not counted, by either: ``F.interpolate`` calls,
softmax and GELU (elementwise, well under 1% for these models). torch's counter sees every convolution and matrix
product (Q K^T and A V included) but no normalisation, pooling or activation.
"""
import warnings
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from hmkd.compat import TORCH_VERSION
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


COUNTERS = ("mmcv", "torch")


def shapes_only(model: nn.Module) -> nn.Module:
    """The model on the meta device, where both counters see every shape and no arithmetic runs (SegFormer-B5 at
    1024x2048 in seconds); torch 1.11 has no meta convolution, so there the model stays where it is."""
    return model.to("meta") if TORCH_VERSION >= (2, 0) else model


def _available(counter: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if counter == "mmcv":
                import mmcv.cnn  # noqa: F401
            else:
                import torch.utils.flop_counter  # noqa: F401
        return True
    except ImportError:
        return False


def available_counters() -> Tuple[str, ...]:
    return tuple(counter for counter in COUNTERS if _available(counter))


def flop_counter(requested: Optional[str] = None) -> str:
    """``requested`` if it is installed; by default "mmcv" where mmcv is installed (the convention of the
    segmentation literature's tables), else "torch" (torch.utils.flop_counter, torch >= 2.1)."""
    if requested is not None:
        if requested not in COUNTERS:
            raise ValueError("FLOP counter must be one of %s, got %r" % (", ".join(COUNTERS), requested))
        if not _available(requested):
            raise ImportError("the %s FLOP counter is not installed here (%s); available: %s" % (
                requested, "mmcv 1.7" if requested == "mmcv" else "torch >= 2.1",
                ", ".join(available_counters()) or "none"))
        return requested
    found = available_counters()
    if not found:
        raise ImportError("no FLOP counter here: install mmcv-full 1.7 (torch 1.x) or use torch >= 2.1")
    return found[0]


def model_complexity(model: nn.Module, size_hw: Tuple[int, int], counter: Optional[str] = None) -> Dict[str, Any]:
    """Parameters and MACs for one image of ``size_hw`` in eval mode (auxiliary heads do not run), with the name of
    the counter used (``counter``: one by name, else :func:`flop_counter`'s); ``flops_attention`` is the attention
    products' share, counted by our own hook. A model on the meta device is counted from shapes alone."""
    counter = flop_counter(counter)
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
