"""HFA's parameter-free global context, X'_i = sum_j softmax_j(<x_i, x_j>) x_j over all h*w positions of a map.

Usage:
    y_bchw = global_context(x_bchw, chunk_size=1024)   # memory O(chunk_size * h*w) per image
    y_bchw = global_context_sdpa(x_bchw)               # torch 2's fused attention with q = k = v = X, scale 1
    y_bchw = global_context_direct(x_bchw)             # the reference: materialises the (h*w, h*w) affinity
    fn = context_function("chunked" | "sdpa" | "direct", chunk_size)   # what loss.terms.hfa.context names

Why chunks: at a 512x1024 crop an output-stride-8 CNN's stage-3 map has h*w = 8192, so the direct affinity is a
256 MiB float32 matrix per image, and autograd keeps it and its softmax for backward. The chunked version handles
``chunk_size`` queries at a time and saves only the input; backward recomputes each chunk's affinities, so memory
grows with h*w (times the chunk), not with (h*w)^2. Measured on CPU at h*w = 8192, 256 channels, one image, forward
and backward: 82 MiB peak chunked (chunk 1024; 33 MiB at chunk 256) against 786 MiB direct.

Numerics: the dot products are not scaled (the method has none). With 256 channels they reach hundreds to thousands,
so every version runs in float32 at least (float64 stays float64; autocast, on the CPU or CUDA, is switched off
inside and a lower-precision input is widened) and subtracts the row maximum before exp (the direct one through
``torch.softmax``, SDPA in its kernels, the chunked one in place, see :func:`_softmax_rows_`); rows are then close
to one-hot. Outputs have the input's dtype, float32 under autocast.

SDPA is the same memory class as the chunked version on GPUs (its memory-efficient kernel takes float32) and needs
torch 2 (on torch 1.11 ``context_function`` falls back to the chunked version with a warning).
"""
import logging
import math
from contextlib import contextmanager
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from hmkd.compat import HAS_SDPA, autocast, autocast_enabled, sdpa

log = logging.getLogger(__name__)
CONTEXT_IMPLEMENTATIONS = ("chunked", "sdpa", "direct")


def _work_dtype(x: Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


@contextmanager
def _full_precision(x_bchw: Tensor):
    """Autocast off on the input's device; yields the input, widened to float32 when autocast was on."""
    device_type = x_bchw.device.type
    if not autocast_enabled(device_type):
        yield x_bchw
        return
    with autocast(device_type, None):
        yield x_bchw.to(_work_dtype(x_bchw))


def _to_bnc(x_bchw: Tensor) -> Tensor:
    return x_bchw.flatten(2).transpose(1, 2)


def _to_bchw(y_bnc: Tensor, like_bchw: Tensor) -> Tensor:
    return y_bnc.transpose(1, 2).reshape(like_bchw.shape)


def _softmax_rows_(scores_bqn: Tensor) -> Tensor:
    """Row softmax in place (max subtracted first, as torch.softmax does): one (q, N) buffer instead of two.

    On these near one-hot rows almost every shifted score is far below the row maximum, and on the CPU both exp of
    inputs whose result would be subnormal and products with subnormal weights take slow paths (each 15-50x). So
    scores are raised to 1 + log(smallest normal) before exp, and weights below twice the exp of that floor
    (6.4e-38 in float32) are set to exactly 0, as torch.softmax's underflow would nearly all of them; none of them
    can move a row sum, which is at least 1.
    """
    floor = math.log(torch.finfo(scores_bqn.dtype).tiny) + 1.0
    scores_bqn.sub_(scores_bqn.amax(dim=-1, keepdim=True)).clamp_(min=floor).exp_()
    F.threshold_(scores_bqn, 2.0 * math.exp(floor), 0.0)
    return scores_bqn.div_(scores_bqn.sum(dim=-1, keepdim=True))


def _chunk_affinity(x_bcn: Tensor, start: int, stop: int) -> Tensor:
    """softmax_rows(X_q X^T) for queries start:stop, (B, q, N)."""
    return _softmax_rows_(torch.bmm(x_bcn[:, :, start:stop].transpose(1, 2), x_bcn))


class _ChunkedGlobalContext(torch.autograd.Function):
    """Forward and backward over query chunks; saves only x, never a (N, N) matrix.

    Everything stays in the (B, C, N) layout that is a free view of (B, C, h, w), so no transposed copy of the
    map is made: besides the input, the output and the gradient, the only buffers are one or two (q, N) chunk
    matrices. With S = X X^T, P = softmax_rows(S), Y = P X and G = dL/dY (rows are positions), for the query
    rows q of one chunk: dP_q = G_q X^T, dS_q = P_q * (dP_q - rowsum(P_q * dP_q)), and dX gets P_q^T G_q (values)
    + dS_q^T X_q (keys) + dS_q X on rows q (queries), since X appears in all three places. The row sum is taken
    from dP itself (as autograd's softmax backward does), not as <g_i, y_i>: with near one-hot rows the two round
    differently and only the former cancels exactly.
    """

    @staticmethod
    def forward(ctx, x_bchw: Tensor, chunk_size: int) -> Tensor:
        ctx.in_dtype = x_bchw.dtype
        x_bcn = x_bchw.to(_work_dtype(x_bchw)).flatten(2).contiguous()
        y_bcn = torch.empty_like(x_bcn)
        for start in range(0, x_bcn.shape[2], chunk_size):
            stop = start + chunk_size
            attn_bqn = _chunk_affinity(x_bcn, start, stop)
            y_bcn[:, :, start:stop] = torch.bmm(x_bcn, attn_bqn.transpose(1, 2))
            del attn_bqn  # freed before the next chunk allocates its own: one (q, N) buffer at a time
        ctx.chunk_size = chunk_size
        ctx.save_for_backward(x_bcn)
        return y_bcn.view(x_bchw.shape).to(ctx.in_dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_bchw: Tensor):
        (x_bcn,) = ctx.saved_tensors
        grad_bcn = grad_bchw.to(x_bcn.dtype).flatten(2)
        grad_x_bcn = torch.zeros_like(x_bcn)
        for start in range(0, x_bcn.shape[2], ctx.chunk_size):
            stop = start + ctx.chunk_size
            x_bcq, g_bcq = x_bcn[:, :, start:stop], grad_bcn[:, :, start:stop]
            attn_bqn = _chunk_affinity(x_bcn, start, stop)
            d_scores_bqn = torch.bmm(g_bcq.transpose(1, 2), x_bcn)         # dP_q, turned into dS_q in place
            row_dot_bq11 = torch.matmul(d_scores_bqn.unsqueeze(-2), attn_bqn.unsqueeze(-1))
            d_scores_bqn.sub_(row_dot_bq11.squeeze(-1)).mul_(attn_bqn)
            grad_x_bcn.baddbmm_(g_bcq, attn_bqn)                           # X as values
            del attn_bqn
            grad_x_bcn.baddbmm_(x_bcq, d_scores_bqn)                       # X as keys
            grad_x_bcn[:, :, start:stop] += torch.bmm(x_bcn, d_scores_bqn.transpose(1, 2))  # X as queries
            del d_scores_bqn
        return grad_x_bcn.view(grad_bchw.shape).to(ctx.in_dtype), None


def global_context(x_bchw: Tensor, chunk_size: int = 1024) -> Tensor:
    """Chunked global context; equals :func:`global_context_direct` (tested), in O(chunk_size * h*w) memory."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError("chunk_size must be a positive integer, got %r" % (chunk_size,))
    with _full_precision(x_bchw) as x_bchw:
        return _ChunkedGlobalContext.apply(x_bchw, chunk_size)


def global_context_sdpa(x_bchw: Tensor) -> Tensor:
    """torch's ``scaled_dot_product_attention`` with q = k = v = X (one head) and scale 1; equals the others to
    float32 rounding (tested). Needs torch 2 (``hmkd.compat.HAS_SDPA``)."""
    with _full_precision(x_bchw) as x_bchw:
        x_b1nc = _to_bnc(x_bchw).to(_work_dtype(x_bchw)).unsqueeze(1)
        return _to_bchw(sdpa(x_b1nc, x_b1nc, x_b1nc, scale=1.0).squeeze(1), x_bchw).to(x_bchw.dtype)


def global_context_direct(x_bchw: Tensor) -> Tensor:
    """The formula as written, with its (B, h*w, h*w) affinity: the reference for tests and memory benchmarks."""
    with _full_precision(x_bchw) as x_bchw:
        x_bnc = _to_bnc(x_bchw).to(_work_dtype(x_bchw))
        attn_bnn = torch.softmax(torch.bmm(x_bnc, x_bnc.transpose(1, 2)), dim=-1)
        return _to_bchw(torch.bmm(attn_bnn, x_bnc), x_bchw).to(x_bchw.dtype)


def context_function(implementation: str, chunk_size: int = 1024) -> Callable[[Tensor], Tensor]:
    """The global context that ``implementation`` names; ``sdpa`` without torch 2 falls back to ``chunked``."""
    if implementation not in CONTEXT_IMPLEMENTATIONS:
        raise ValueError("global context implementation must be one of %s, got %r"
                         % (", ".join(CONTEXT_IMPLEMENTATIONS), implementation))
    if implementation == "sdpa" and not HAS_SDPA:
        log.warning("global context: scaled_dot_product_attention needs torch 2 (this is torch %s); using the "
                    "chunked version", torch.__version__)
        implementation = "chunked"
    if implementation == "sdpa":
        return global_context_sdpa
    if implementation == "direct":
        return global_context_direct
    return lambda x_bchw: global_context(x_bchw, chunk_size)
