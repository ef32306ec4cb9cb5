"""SegFormer: numerically equal to transformers' implementation, NVlabs encoder loading, strides."""
import pytest
import torch

from hmkd.compat import HAS_SDPA
from hmkd.models import build_model, load_pretrained
from hmkd.models.segformer import convert_hf_state_dict

transformers = pytest.importorskip("transformers")

# name -> (hidden sizes, depths, decoder width), the published configurations.
HF_CONFIGS = {
    "segformer_b0": ([32, 64, 160, 256], [2, 2, 2, 2], 256),
    "segformer_b2": ([64, 128, 320, 512], [3, 4, 6, 3], 768),
}


def _hf_model(name: str, num_classes: int):
    sizes, depths, decoder = HF_CONFIGS[name]
    config = transformers.SegformerConfig(hidden_sizes=sizes, depths=depths, decoder_hidden_size=decoder,
                                          num_labels=num_classes, num_attention_heads=[1, 2, 5, 8],
                                          sr_ratios=[8, 4, 2, 1])
    torch.manual_seed(0)
    model = transformers.SegformerForSemanticSegmentation(config).eval()
    with torch.no_grad():  # random running statistics, so the BN in the decoder is exercised too
        bn = model.decode_head.batch_norm
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("name", sorted(HF_CONFIGS))
def test_equals_transformers_segformer(name):
    """Converted random weights give the same logits and stage features as transformers', non-square input."""
    hf = _hf_model(name, num_classes=5)
    # transformers uses LayerNorm's default eps (1e-5) where NVlabs uses 1e-6 in blocks and stage norms.
    ours = build_model(name, num_classes=5, norm_eps=1e-5).eval()
    ours.load_state_dict(convert_hf_state_dict(hf.state_dict()), strict=True)
    images = torch.randn(2, 3, 96, 160)
    with torch.no_grad():
        expected = hf(pixel_values=images, output_hidden_states=True)
        out = ours(images)
    assert out.logits.shape == (2, 5, 24, 40)
    # The same float32 arithmetic in another order (the deeper variants' 18+ blocks, torch 2's kernels) differs by
    # a few ulps: 1e-5 absolute plus 1e-5 relative (about 80 ulps at the logits' magnitude of 2).
    torch.testing.assert_close(out.logits, expected.logits, rtol=1e-5, atol=1e-5)
    for feat, ref in zip(out.features, expected.hidden_states):
        torch.testing.assert_close(feat, ref, rtol=1e-5, atol=1e-5)


def test_loads_hf_checkpoint_file_through_load_pretrained(tmp_path):
    hf = _hf_model("segformer_b0", num_classes=3)
    path = tmp_path / "hf_segformer_b0.bin"
    torch.save(hf.state_dict(), path)
    ours = build_model("segformer_b0", num_classes=3, norm_eps=1e-5).eval()
    report = load_pretrained(ours, str(path))
    assert report.target == "model" and not report.missing and not report.unexpected
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours(images).logits, hf(pixel_values=images).logits, rtol=0, atol=1e-5)


def test_loads_nvlabs_mit_encoder_and_reports_head(tmp_path):
    """An NVlabs ImageNet encoder (encoder keys + classifier ``head.*``) fills the backbone exactly."""
    source = build_model("segformer_b0", num_classes=19)
    encoder = dict(source.backbone.state_dict())
    encoder["head.weight"] = torch.randn(1000, 256)
    encoder["head.bias"] = torch.randn(1000)
    path = tmp_path / "mit_b0.pth"
    torch.save(encoder, path)
    model = build_model("segformer_b0", num_classes=19, pretrained=str(path))
    for key, value in source.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key


@pytest.mark.skipif(not HAS_SDPA, reason="scaled_dot_product_attention needs torch 2 (the fallback is tested below)")
@pytest.mark.parametrize("name", ["segformer_tiny", "segformer_b0"])
def test_sdpa_attention_equals_eager(name):
    """Same weights, logits, features and input gradients to 1e-5 (float32 rounding of the fused softmax), on a
    non-square input in training mode (dropout and stochastic depth off, as they draw random numbers)."""
    torch.manual_seed(0)
    eager = build_model(name, 19, drop_path_rate=0.0, decoder_dropout=0.0)
    fused = build_model(name, 19, drop_path_rate=0.0, decoder_dropout=0.0, attention="sdpa")
    fused.load_state_dict(eager.state_dict())
    assert all(m.use_sdpa for m in fused.modules() if hasattr(m, "use_sdpa"))
    images = torch.randn(2, 3, 64, 96)
    outs = []
    for model in (eager, fused):
        x = images.clone().requires_grad_()
        out = model.train()(x)
        (out.logits.square().mean() + sum(f.mean() for f in out.features)).backward()
        outs.append((out, x.grad))
    (out_e, grad_e), (out_f, grad_f) = outs
    torch.testing.assert_close(out_f.logits, out_e.logits, atol=1e-5, rtol=1e-5)
    for feat_f, feat_e in zip(out_f.features, out_e.features):
        torch.testing.assert_close(feat_f, feat_e, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad_f, grad_e, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(HAS_SDPA, reason="torch 2 has scaled_dot_product_attention")
def test_sdpa_attention_falls_back_to_eager_on_torch_1(caplog):
    torch.manual_seed(0)
    eager = build_model("segformer_tiny", 3)
    with caplog.at_level("WARNING", logger="hmkd.models.segformer"):
        fused = build_model("segformer_tiny", 3, attention="sdpa")
    assert "attention=sdpa needs torch 2" in caplog.text and "using eager attention" in caplog.text
    fused.load_state_dict(eager.state_dict())
    images = torch.randn(1, 3, 32, 48)
    assert torch.equal(fused.eval()(images).logits, eager.eval()(images).logits)


def test_rejects_unknown_attention_kernel():
    from hmkd.config import config_from_dict

    with pytest.raises(ValueError, match="attention must be one of 'eager', 'sdpa', got 'flash'"):
        config_from_dict({"model": {"name": "segformer_tiny", "options": {"attention": "flash"}},
                          "data": {"name": "synthetic", "num_classes": 3}})
