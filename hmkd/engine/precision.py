"""Mixed precision in one place: what ``train.amp`` / ``teacher.amp`` ask for and what this device and stack run.

Usage: mode = amp_mode(cfg.train.amp, "train.amp")            # None, "fp16" or "bf16" (true means fp16)
       precision = resolve_precision(mode, device, "train.amp", warn=log.warning)
       with precision.autocast(): ...;  scaler = grad_scaler(precision.needs_scaler)

fp16 needs a loss scaler (its range underflows small gradients); bf16 has float32's range and needs none. On the
CPU, fp16 autocast is not offered (ignored with a warning), and bf16 needs torch 2: torch 1.11's CPU autocast has
no bfloat16 LayerNorm (SegFormer) nor dilated convolution (DeepLabV3), so the legacy stack trains in float32 there.
"""
from contextlib import nullcontext
from typing import Any, Callable, NamedTuple, Optional

import torch

from hmkd.compat import CPU_BF16_AUTOCAST, autocast

AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def amp_mode(value: Any, where: str) -> Optional[str]:
    """The config value as a mode: false/none -> None, true -> "fp16" (its meaning before bf16), fp16, bf16."""
    if value is None or value is False:
        return None
    if value is True:
        return "fp16"
    if not isinstance(value, str) or value not in AMP_DTYPES:
        raise ValueError("%s must be false, fp16 or bf16 (true means fp16), got %r" % (where, value))
    return value


class Precision(NamedTuple):
    device_type: str
    dtype: Optional[torch.dtype]  # None: float32, no autocast

    @property
    def needs_scaler(self) -> bool:
        return self.dtype == torch.float16

    @property
    def name(self) -> str:
        return {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(self.dtype, "fp32")

    def autocast(self):
        return nullcontext() if self.dtype is None else autocast(self.device_type, self.dtype)


def resolve_precision(mode: Optional[str], device: torch.device, where: str,
                      warn: Callable[[str], None]) -> Precision:
    """What runs for ``mode`` on ``device``: as asked on CUDA; on the CPU bf16 where the stack has it, else fp32."""
    if mode is None or device.type == "cuda":
        return Precision(device.type, AMP_DTYPES.get(mode))
    if mode == "fp16":
        warn("%s=fp16 is ignored on the CPU (no float16 autocast there); training in float32 (bf16 runs on the CPU "
             "with torch 2)" % where)
        return Precision(device.type, None)
    if not CPU_BF16_AUTOCAST:
        warn("%s=bf16 is ignored on the CPU with torch %s (its bfloat16 autocast cannot run these models); training "
             "in float32 (the modern stack runs it: make setup STACK=modern)" % (where, torch.__version__))
        return Precision(device.type, None)
    return Precision(device.type, torch.bfloat16)
