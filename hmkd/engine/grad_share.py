"""Each loss term's real weight: the norm of its gradient on the student's parameters, as a share of all terms'.

Usage:
    if grad_share_due(step, cfg.train.grad_share_interval):                       # step 1, then every N steps
        norms = term_gradient_norms(terms, student_parameters)                     # before the step's backward
        shares = gradient_shares(norms)                                            # {"ce": 0.93, "gla": 0.0004, ...}
        switched_off(shares)                                                       # ["gla"]: below 1% of the total

A term's weight in the config says little about its pull on the student: its scale does (GLA's mean reduction is
B * M^2 times smaller than the authors' sum, so at weight 1 it adds next to nothing). The trainer measures each
term's gradient separately with ``torch.autograd.grad`` on the graph the step built anyway (retained for the
step's own backward), on diagnostic steps only, so other steps cost what they did. Shares are ||g_term|| over the
sum of every term's ||g||: they sum to 1. Alignment modules are left out: what counts is what reaches the student.
"""
import math
from typing import Dict, List, Sequence

import torch
from torch import Tensor

SWITCHED_OFF_SHARE = 0.01
GRAD_SHARE, GRAD_NORM = "grad_share/", "grad_norm/"  # metrics.jsonl keys: GRAD_SHARE + term


def grad_share_due(step: int, interval: int) -> bool:
    """Whether (1-based) ``step`` is a diagnostic step: the first, then every ``interval`` (0: never)."""
    return interval > 0 and (step == 1 or step % interval == 0)


def term_gradient_norms(terms: Dict[str, Tensor], parameters: Sequence[Tensor], scale: float = 1.0
                        ) -> Dict[str, float]:
    """{term: ||d term / d parameters||} in float64; ``scale``: the loss scaler's factor to divide out (fp16). A
    term that does not depend on the parameters has norm 0. The graph is kept for the step's backward."""
    norms = {}
    for name, value in terms.items():
        if not value.requires_grad:
            norms[name] = 0.0
            continue
        grads = torch.autograd.grad(value * scale, parameters, retain_graph=True, allow_unused=True)
        squares = [g.detach().double().pow(2).sum() for g in grads if g is not None]
        norms[name] = math.sqrt(float(torch.stack(squares).sum())) / scale if squares else 0.0
    return norms


def gradient_shares(norms: Dict[str, float]) -> Dict[str, float]:
    """Each norm over their sum (all 0 when every norm is 0)."""
    total = sum(norms.values())
    return {name: norm / total if total > 0 else 0.0 for name, norm in norms.items()}


def switched_off(shares: Dict[str, float]) -> List[str]:
    """The terms whose share is below SWITCHED_OFF_SHARE: present in the loss, absent from the student's update."""
    return [name for name, share in shares.items() if share < SWITCHED_OFF_SHARE]
