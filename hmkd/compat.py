"""What differs between the two stacks (legacy: torch 1.11; modern: torch 2.x), in one place.

Usage: state = torch_load(path)          # a checkpoint with configs, RNG states and tensors, on the CPU
       with cuda_autocast(amp): ...; scaler = grad_scaler(amp); @custom_fwd_float32 on an autograd forward
"""
import inspect
from typing import Any

import torch

# torch >= 2.6 loads tensors only unless told otherwise; torch 1.11 has no such switch (and loads everything).
_HAS_WEIGHTS_ONLY = "weights_only" in inspect.signature(torch.load).parameters
_AMP = getattr(torch, "amp", None)  # the device-generic AMP namespace of torch 2 (absent in 1.11)


def torch_load(path: Any) -> Any:
    """``torch.load`` onto the CPU of a whole checkpoint: ours hold RNG states (numpy arrays, tuples) and configs
    beside the tensors, and third-party files hold metadata, which torch 2's tensors-only default refuses."""
    if _HAS_WEIGHTS_ONLY:
        return torch.load(path, map_location="cpu", weights_only=False)
    return torch.load(path, map_location="cpu")


def cuda_autocast(enabled: bool = True):
    """CUDA fp16 autocast; torch.autocast exists on both stacks (torch.cuda.amp.autocast is deprecated in torch 2)."""
    return torch.autocast("cuda", enabled=enabled)


def grad_scaler(enabled: bool):
    """The fp16 loss scaler: torch.amp.GradScaler on torch 2, torch.cuda.amp.GradScaler (its only home) on 1.11."""
    if hasattr(_AMP, "GradScaler"):
        return _AMP.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


def custom_fwd_float32(forward):
    """An autograd Function's forward run in float32 under autocast (inputs cast to it), on both stacks."""
    if hasattr(_AMP, "custom_fwd"):
        return _AMP.custom_fwd(forward, device_type="cuda", cast_inputs=torch.float32)
    return torch.cuda.amp.custom_fwd(forward, cast_inputs=torch.float32)
