"""SegFormer's attention taps: the HMKD authors' entries attn(norm1(x)) after the residual, computed by hand."""
import pytest
import torch

from hmkd.models import build_model
from hmkd.models.output import Tap
from hmkd.models.segformer import SegFormer, tokens_to_map


def _mit(depths=(3, 1, 2, 1)):
    """Linear weights larger than the trained-from-scratch init (std 0.02), so that the attention residual moves x
    enough for the entry after it to differ visibly from the branch before it."""
    torch.manual_seed(0)
    model = SegFormer(4, (8, 16, 24, 32), depths, 16, num_heads=(1, 2, 3, 4)).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(0.0, 0.4)
    return model


def _entries_by_hand(model, images):
    """Per stage: [patch-embedding tokens, block entries...] as maps, with the block loop written out."""
    lists, x_bchw = [], images
    for i in range(4):
        tokens, height, width = getattr(model.backbone, "patch_embed%d" % (i + 1))(x_bchw)
        entries = [tokens_to_map(tokens, height, width)]
        for block in getattr(model.backbone, "block%d" % (i + 1)):
            tokens = tokens + block.attn(block.norm1(tokens), height, width)
            entries.append(tokens_to_map(block.attn(block.norm1(tokens), height, width), height, width))
            tokens = tokens + block.mlp(block.norm2(tokens), height, width)
        lists.append(entries)
        x_bchw = tokens_to_map(getattr(model.backbone, "norm%d" % (i + 1))(tokens), height, width)
    return lists


def test_taps_equal_the_entries_computed_by_hand():
    model = _mit()
    images = torch.randn(2, 3, 64, 96)
    taps = [Tap(0, "attn_second_last"), Tap(0, "attn_mean"), Tap(1, "attn_second_last"), Tap(2, "attn_mean")]
    with torch.no_grad():
        out, plain = model(images, taps=taps), model(images)
        lists = _entries_by_hand(model, images)
    exact = dict(atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out.feature(Tap(0, "attn_second_last")), lists[0][-2], **exact)   # block 2 of 3
    torch.testing.assert_close(out.feature(Tap(0, "attn_mean")), sum(lists[0][1:]) / 3, **exact)
    torch.testing.assert_close(out.feature(Tap(1, "attn_second_last")), lists[1][0], **exact)    # one block: tokens
    torch.testing.assert_close(out.feature(Tap(2, "attn_mean")), sum(lists[2][1:]) / 2, **exact)
    # The entry is recomputed after the residual: it is not the attention branch the block adds.
    with torch.no_grad():
        tokens, height, width = model.backbone.patch_embed1(images)
        block = model.backbone.block1[0]
        branch = tokens_to_map(block.attn(block.norm1(tokens), height, width), height, width)
    assert (lists[0][1] - branch).abs().max() > 0.1 * branch.abs().max()
    # Asking for taps changes nothing else.
    torch.testing.assert_close(out.logits, plain.logits, atol=0, rtol=0)
    for a, b in zip(out.features, plain.features):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert plain.taps is None and set(out.taps) == set(taps)
    assert out.feature(Tap(3)) is out.features[3]


def test_taps_carry_gradient_to_the_attention_weights():
    """In the reverse direction the taps come from the student: they must train its attention."""
    model = _mit().train()
    out = model(torch.randn(2, 3, 64, 64), taps=[Tap(0, "attn_second_last")])
    out.feature(Tap(0, "attn_second_last")).square().mean().backward()
    assert model.backbone.block1[1].attn.q.weight.grad.abs().sum() > 0
    assert model.backbone.block1[2].attn.q.weight.grad is None   # block 3's entry is not read


def test_a_cnn_has_no_attention_taps():
    model = build_model("deeplabv3_tiny", 3).eval()
    with pytest.raises(ValueError, match="DeepLabV3 has no attention taps"):
        model(torch.randn(1, 3, 32, 32), taps=[Tap(2, "attn_mean")])
    assert model(torch.randn(1, 3, 32, 32), taps=[Tap(2)]).taps is None


def test_the_retired_model_option_names_the_term_option():
    with pytest.raises(ValueError, match="stage3_features' is obsolete .*loss.terms.hfa.tap: attn_mean"):
        build_model("segformer_tiny", 4, stage3_features="attn_mean")
    with pytest.warns(UserWarning, match="stage3_features' is obsolete and ignored"):
        build_model("segformer_tiny", 4, stage3_features="output")
