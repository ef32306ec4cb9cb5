"""What differs between the two stacks (legacy: torch 1.11; modern: torch 2.x), in one place.

Usage: state = torch_load(path)          # a checkpoint with configs, RNG states and tensors, on the CPU
       with autocast("cuda", torch.float16): ...; with autocast("cpu", None): ...   # None: autocast off
       scaler = grad_scaler(enabled)
       if HAS_SDPA: out = sdpa(q, k, v, scale)          # torch 2's fused attention (absent in 1.11)
       if HAS_MODULE_COMPILE: module.compile()          # torch.compile in place (torch >= 2.2)
       onnx_export(module, (images,), buffer, opset_version=14, ...)   # TorchScript-based exporter on both stacks
       quiet_cpp_extension()                            # before mmcv: no CUDA_HOME notice on a CPU machine

The speed switches of the config (SDPA, bf16 on the CPU, compile) need torch 2; on the legacy stack the places that
read them fall back to the eager path with a logged warning, using the flags below.
"""
import contextlib
import importlib.util
import inspect
import io
import logging
import re
import sys
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# torch >= 2.6 loads tensors only unless told otherwise; torch 1.11 has no such switch (and loads everything).
_HAS_WEIGHTS_ONLY = "weights_only" in inspect.signature(torch.load).parameters
_AMP = getattr(torch, "amp", None)  # the device-generic AMP namespace of torch 2 (absent in 1.11)
TORCH_VERSION = tuple(int(part) for part in re.findall(r"\d+", torch.__version__)[:2])
HAS_SDPA = hasattr(F, "scaled_dot_product_attention")
_SDPA_TAKES_SCALE = TORCH_VERSION >= (2, 1)
HAS_MODULE_COMPILE = hasattr(nn.Module, "compile")
# torch 1.11's bfloat16 CPU autocast has no LayerNorm (SegFormer) nor dilated convolution (DeepLabV3) kernels.
CPU_BF16_AUTOCAST = TORCH_VERSION >= (2, 0)


def torch_load(path: Any) -> Any:
    """``torch.load`` onto the CPU of a whole checkpoint: ours hold RNG states (numpy arrays, tuples) and configs
    beside the tensors, and third-party files hold metadata, which torch 2's tensors-only default refuses."""
    if _HAS_WEIGHTS_ONLY:
        return torch.load(path, map_location="cpu", weights_only=False)
    return torch.load(path, map_location="cpu")


def grad_scaler(enabled: bool):
    """The fp16 loss scaler: torch.amp.GradScaler on torch 2, torch.cuda.amp.GradScaler (its only home) on 1.11."""
    if hasattr(_AMP, "GradScaler"):
        return _AMP.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


def sdpa(query: Tensor, key: Tensor, value: Tensor, scale: float, dropout_p: float = 0.0) -> Tensor:
    """softmax(q k^T * scale) v by torch's fused kernels (only where ``HAS_SDPA``); torch 2.0 has no ``scale``
    argument, so there the query is rescaled against its fixed 1/sqrt(head_dim)."""
    if _SDPA_TAKES_SCALE:
        return F.scaled_dot_product_attention(query, key, value, dropout_p=dropout_p, scale=scale)
    return F.scaled_dot_product_attention(query * (scale * query.shape[-1] ** 0.5), key, value, dropout_p=dropout_p)


def autocast(device_type: str, dtype: Optional[torch.dtype]):
    """Autocast to ``dtype`` on ``device_type`` ("cuda" or "cpu"); ``dtype`` None: disabled."""
    if dtype is None:
        return torch.autocast(device_type, enabled=False)
    return torch.autocast(device_type, dtype=dtype)


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type``; torch 1.11 has one query per device, torch 2 one for all."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no argument, CUDA only; the CPU has its own query
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def onnx_export(module: nn.Module, args: Any, target: Any, **options: Any) -> None:
    """``torch.onnx.export`` by tracing, on both stacks: recent torch 2 releases default to the dynamo exporter, which
    needs onnxscript (not in either stack) and handles ``dynamic_axes`` differently, so it is turned off where it
    exists."""
    import torch.onnx

    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        options["dynamo"] = False
    torch.onnx.export(module, args, target, **options)


def quiet_cpp_extension() -> None:
    """Import torch.utils.cpp_extension (mmcv, the FLOP counter, imports it) with its import-time notice "No CUDA
    runtime is found, using CUDA_HOME=..." swallowed: it comes on every machine with a CUDA toolkit and no GPU, printed
    to stdout by torch 1.11 and logged as a warning by torch 2. CUDA_HOME is looked up once, at import, so later imports
    say nothing; building an extension still warns as before. Nothing is imported where mmcv is not installed."""
    if "torch.utils.cpp_extension" in sys.modules or importlib.util.find_spec("mmcv") is None:
        return
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import torch.utils.cpp_extension  # noqa: F401
    except ImportError:  # mmcv's own import then names what is missing
        pass
    finally:
        logger.setLevel(level)
