"""What differs between the two stacks (legacy: torch 1.11; modern: torch 2.x), in one place.

Usage: state = torch_load(path)          # a checkpoint with configs, RNG states and tensors, on the CPU
"""
import inspect
from typing import Any

import torch

# torch >= 2.6 loads tensors only unless told otherwise; torch 1.11 has no such switch (and loads everything).
_HAS_WEIGHTS_ONLY = "weights_only" in inspect.signature(torch.load).parameters


def torch_load(path: Any) -> Any:
    """``torch.load`` onto the CPU of a whole checkpoint: ours hold RNG states (numpy arrays, tuples) and configs
    beside the tensors, and third-party files hold metadata, which torch 2's tensors-only default refuses."""
    if _HAS_WEIGHTS_ONLY:
        return torch.load(path, map_location="cpu", weights_only=False)
    return torch.load(path, map_location="cpu")
