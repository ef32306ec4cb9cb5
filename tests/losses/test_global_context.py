"""Chunked global context: same values and gradients as the direct formula, without keeping an (hw, hw) matrix."""
import pytest
import torch
from torch.autograd.graph import saved_tensors_hooks

from hmkd.compat import CPU_BF16_AUTOCAST, HAS_SDPA
from hmkd.losses.distill import context_function, global_context, global_context_direct, global_context_sdpa


def _explicit(x_bchw):
    """The formula written out per image and position, independent of both implementations."""
    out = torch.empty_like(x_bchw)
    for b in range(x_bchw.shape[0]):
        feats = x_bchw[b].flatten(1)                       # (C, N)
        for i in range(feats.shape[1]):
            weights = torch.softmax(feats[:, i] @ feats, dim=0)
            out[b].view(feats.shape[0], -1)[:, i] = feats @ weights
    return out


@pytest.mark.parametrize("shape,chunk", [
    ((2, 5, 7, 9), 10),     # hw = 63, not a multiple of the chunk
    ((1, 3, 5, 5), 1),      # one query at a time
    ((3, 4, 4, 6), 64),     # one chunk larger than hw
])
def test_chunked_matches_direct_values_and_gradients(shape, chunk):
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(*shape, dtype=torch.float64)
    chunked = global_context(x, chunk)
    (grad_chunked,) = torch.autograd.grad((chunked * upstream).sum(), x)
    direct = global_context_direct(x)
    (grad_direct,) = torch.autograd.grad((direct * upstream).sum(), x)
    assert chunked.shape == x.shape and chunked.dtype == torch.float64
    torch.testing.assert_close(chunked, direct, atol=1e-10, rtol=0)
    torch.testing.assert_close(grad_chunked, grad_direct, atol=1e-10, rtol=0)
    torch.testing.assert_close(direct.detach(), _explicit(x.detach()), atol=1e-10, rtol=0)


def test_custom_backward_passes_gradcheck():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: global_context(t, 5), (x,))


def test_float32_with_large_dot_products_matches_direct():
    """256 channels of features scaled like post-ReLU activations: dot products in the thousands, no overflow."""
    torch.manual_seed(0)
    x = (torch.rand(2, 256, 6, 11) * 4.0).requires_grad_()
    upstream = torch.randn(2, 256, 6, 11)
    chunked = global_context(x, 16)
    (grad_chunked,) = torch.autograd.grad((chunked * upstream).sum(), x)
    direct = global_context_direct(x)
    (grad_direct,) = torch.autograd.grad((direct * upstream).sum(), x)
    scores = torch.einsum("cn,cm->nm", x[0].detach().flatten(1), x[0].detach().flatten(1))
    assert scores.max() > 1000  # the regime where an unstabilised exp would overflow float32
    assert chunked.dtype == torch.float32 and torch.isfinite(chunked).all() and torch.isfinite(grad_chunked).all()
    torch.testing.assert_close(chunked, direct, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad_chunked, grad_direct, atol=1e-5, rtol=1e-5)


def _saved_numels(fn, x):
    numels = []

    def pack(tensor):
        numels.append(tensor.numel())
        return tensor

    with saved_tensors_hooks(pack, lambda tensor: tensor):
        fn(x)
    return numels


def test_backward_keeps_no_hw_squared_tensor():
    """What autograd keeps for backward is O(hw * C) chunked, against (hw)^2 for the direct formula."""
    x = torch.randn(1, 4, 12, 16, requires_grad=True)   # hw = 192, hw^2 = 36864, hw * C = 768
    hw = 12 * 16
    chunked = _saved_numels(lambda t: global_context(t, 32), x)
    direct = _saved_numels(global_context_direct, x)
    assert max(direct) >= hw * hw
    assert chunked and sum(chunked) <= hw * 4  # the input only; every affinity chunk is recomputed


def test_bad_chunk_size_raises():
    with pytest.raises(ValueError, match="chunk_size"):
        global_context(torch.randn(1, 2, 3, 3), 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_in_place_softmax_matches_torch_and_leaves_no_subnormal_weights(dtype):
    """Weights near the subnormal range make exp and every later product slow on the CPU: they must be exactly 0
    (no weight in (0, 4 * tiny), so products with features of magnitude >= 1/4 stay normal), and the rows must
    still be torch's softmax."""
    from hmkd.losses.distill.global_context import _softmax_rows_

    torch.manual_seed(0)
    scores = torch.randn(2, 7, 300, dtype=dtype) * 400.0  # spreads of thousands, as with 256 unscaled channels
    scores[0, 0] = torch.linspace(0.0, -800.0, 300, dtype=dtype)  # every magnitude, through the subnormal range
    expected = torch.softmax(scores, dim=-1)
    weights = _softmax_rows_(scores.clone())
    torch.testing.assert_close(weights, expected, atol=1e-30, rtol=1e-6)
    tiny = torch.finfo(dtype).tiny
    assert not ((weights > 0) & (weights < 4 * tiny)).any()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 7, dtype=dtype))


@pytest.mark.skipif(not HAS_SDPA, reason="scaled_dot_product_attention needs torch 2 (the fallback is tested below)")
def test_sdpa_matches_direct_in_float32_with_large_dot_products():
    """softmax(X X^T) X as attention with q = k = v = X, scale 1: values and gradients to 1e-5 (float32 rounding of
    the fused kernel's blockwise softmax), in the regime of the float32 test above."""
    torch.manual_seed(0)
    x = (torch.rand(2, 64, 6, 11) * 4.0).requires_grad_()
    upstream = torch.randn(2, 64, 6, 11)
    fused = global_context_sdpa(x)
    (grad_fused,) = torch.autograd.grad((fused * upstream).sum(), x)
    direct = global_context_direct(x)
    (grad_direct,) = torch.autograd.grad((direct * upstream).sum(), x)
    assert fused.shape == x.shape and fused.dtype == torch.float32
    torch.testing.assert_close(fused, direct, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad_fused, grad_direct, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not HAS_SDPA, reason="scaled_dot_product_attention needs torch 2")
def test_sdpa_matches_the_explicit_formula_in_float64():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, 9, dtype=torch.float64)
    torch.testing.assert_close(global_context_sdpa(x), _explicit(x), atol=1e-10, rtol=0)


@pytest.mark.skipif(not CPU_BF16_AUTOCAST, reason="bfloat16 CPU autocast needs torch 2")
@pytest.mark.parametrize("implementation", ["chunked", "sdpa", "direct"])
def test_every_implementation_runs_in_float32_under_cpu_autocast(implementation):
    """Under bf16 autocast the context is computed from the widened input in float32 and returned in float32."""
    torch.manual_seed(0)
    x = torch.rand(1, 32, 5, 6) * 4.0
    fn = context_function(implementation, chunk_size=7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fn(x.to(torch.bfloat16))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, global_context_direct(x.to(torch.bfloat16).float()), atol=1e-5, rtol=1e-5)


def test_context_function_names_its_choices_and_falls_back_without_sdpa(caplog):
    with pytest.raises(ValueError, match="one of chunked, sdpa, direct, got 'flash'"):
        context_function("flash")
    with caplog.at_level("WARNING", logger="hmkd.losses.distill.global_context"):
        fn = context_function("sdpa")
    x = torch.randn(1, 4, 3, 5, dtype=torch.float64)
    if HAS_SDPA:
        assert fn is global_context_sdpa and caplog.text == ""
    else:
        assert "needs torch 2" in caplog.text and torch.equal(fn(x), global_context(x, 1024))
