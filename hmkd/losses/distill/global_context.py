"""HFA's parameter-free global context, X'_i = sum_j softmax_j(<x_i, x_j>) x_j over all h*w positions of a map.

Usage:
    y_bchw = global_context(x_bchw, chunk_size=1024)   # memory O(chunk_size * h*w) per image
    y_bchw = global_context_direct(x_bchw)             # the reference: materialises the (h*w, h*w) affinity

Why chunks: at a 512x1024 crop an output-stride-8 CNN's stage-3 map has h*w = 8192, so the direct affinity is a
256 MiB float32 matrix per image, and autograd keeps it and its softmax for backward. The chunked version handles
``chunk_size`` queries at a time and saves only the input; backward recomputes each chunk's affinities, so memory
grows with h*w (times the chunk), not with (h*w)^2. Measured on CPU at h*w = 8192, 256 channels, one image, forward
and backward: about 150 MiB peak chunked (chunk 1024) against about 790 MiB direct.

Numerics: the dot products are not scaled (the method has none). With 256 channels they reach hundreds to thousands,
so both versions run in float32 at least (float64 stays float64; autocast is switched off inside) and use
``torch.softmax``, which subtracts the row maximum; rows are then close to one-hot. Outputs are cast back to the
input dtype (under autocast the chunked version returns float32).
"""
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def _work_dtype(x: Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


def _to_bnc(x_bchw: Tensor) -> Tensor:
    return x_bchw.flatten(2).transpose(1, 2)


def _to_bchw(y_bnc: Tensor, like_bchw: Tensor) -> Tensor:
    return y_bnc.transpose(1, 2).reshape(like_bchw.shape)


class _ChunkedGlobalContext(torch.autograd.Function):
    """Forward and backward over query chunks; saves only x (B, N, C), never a (N, N) matrix.

    With S = X X^T, P = softmax_rows(S), Y = P X and G = dL/dY, for the query rows q of one chunk:
    dP_q = G_q X^T, dS_q = P_q * (dP_q - rowsum(P_q * dP_q)), and dX gets P_q^T G_q (values) + dS_q^T X_q (keys)
    + dS_q X on rows q (queries), since X appears in all three places. The row sum is taken from dP itself (as
    autograd's softmax backward does), not as <g_i, y_i>: with near one-hot rows the two round differently and
    only the former cancels exactly.
    """

    @staticmethod
    @torch.cuda.amp.custom_fwd(cast_inputs=torch.float32)
    def forward(ctx, x_bnc: Tensor, chunk_size: int) -> Tensor:
        ctx.in_dtype = x_bnc.dtype
        x_bnc = x_bnc.to(_work_dtype(x_bnc)).contiguous()
        keys_bcn = x_bnc.transpose(1, 2)
        y_bnc = torch.empty_like(x_bnc)
        for start in range(0, x_bnc.shape[1], chunk_size):
            stop = start + chunk_size
            attn_bqn = torch.softmax(torch.bmm(x_bnc[:, start:stop], keys_bcn), dim=-1)
            y_bnc[:, start:stop] = torch.bmm(attn_bqn, x_bnc)
        ctx.chunk_size = chunk_size
        ctx.save_for_backward(x_bnc)
        return y_bnc.to(ctx.in_dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_bnc: Tensor):
        (x_bnc,) = ctx.saved_tensors
        grad_bnc = grad_bnc.to(x_bnc.dtype)
        keys_bcn = x_bnc.transpose(1, 2)
        grad_x_bnc = torch.zeros_like(x_bnc)
        for start in range(0, x_bnc.shape[1], ctx.chunk_size):
            stop = start + ctx.chunk_size
            x_q, g_q = x_bnc[:, start:stop], grad_bnc[:, start:stop]
            attn_bqn = torch.softmax(torch.bmm(x_q, keys_bcn), dim=-1)
            d_scores_bqn = torch.bmm(g_q, keys_bcn)                       # dP_q, turned into dS_q in place
            row_dot_bq11 = torch.matmul(d_scores_bqn.unsqueeze(-2), attn_bqn.unsqueeze(-1))
            d_scores_bqn.sub_(row_dot_bq11.squeeze(-1)).mul_(attn_bqn)
            grad_x_bnc.baddbmm_(attn_bqn.transpose(1, 2), g_q)          # X as values
            grad_x_bnc.baddbmm_(d_scores_bqn.transpose(1, 2), x_q)      # X as keys
            grad_x_bnc[:, start:stop] += torch.bmm(d_scores_bqn, x_bnc)  # X as queries
        return grad_x_bnc.to(ctx.in_dtype), None


def global_context(x_bchw: Tensor, chunk_size: int = 1024) -> Tensor:
    """Chunked global context; equals :func:`global_context_direct` (tested), in O(chunk_size * h*w) memory."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError("chunk_size must be a positive integer, got %r" % (chunk_size,))
    y_bnc = _ChunkedGlobalContext.apply(_to_bnc(x_bchw), chunk_size)
    return _to_bchw(y_bnc, x_bchw)


def global_context_direct(x_bchw: Tensor) -> Tensor:
    """The formula as written, with its (B, h*w, h*w) affinity: the reference for tests and memory benchmarks."""
    if torch.is_autocast_enabled():
        with torch.cuda.amp.autocast(enabled=False):
            return global_context_direct(x_bchw)
    x_bnc = _to_bnc(x_bchw).to(_work_dtype(x_bchw))
    attn_bnn = torch.softmax(torch.bmm(x_bnc, x_bnc.transpose(1, 2)), dim=-1)
    return _to_bchw(torch.bmm(attn_bnn, x_bnc), x_bchw).to(x_bchw.dtype)
