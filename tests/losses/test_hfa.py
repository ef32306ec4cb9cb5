"""HFA: steps 1-6 equal a hand-written pipeline; identity warp at start; any direction, batch, crop, widths."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hmkd.losses.distill import global_context_direct
from hmkd.losses.distill.hfa import warp
from hmkd.models import build_model
from hmkd.models.output import SegOutput


def _check_gradients(term, student):
    # The stem: gradient got there through the stage-3 map (timm zero-initialises each residual block's last BN,
    # so inside a fresh ResNet stage only the shortcut paths carry gradient).
    stage_grad = next(student.parameters()).grad
    assert stage_grad is not None and stage_grad.abs().sum() > 0
    for name, param in term.named_parameters():
        assert param.grad is not None, name
        # The zero-initialised last conv blocks gradient to the layers before it on the first step only.
        if not name.startswith("offset_head.") or name.startswith("offset_head.offset."):
            assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("student_name,teacher_name", [
    ("deeplab", "segformer"), ("segformer", "deeplab"), ("deeplab", "deeplab"), ("segformer", "segformer")])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("crop", [(64, 64), (72, 100)])
def test_forward_backward_any_direction_batch_and_crop(tiny_models, fresh_model, make_criterion, run_pair,
                                                       student_name, teacher_name, batch, crop):
    student, teacher = fresh_model(student_name), tiny_models[teacher_name]
    criterion = make_criterion({"hfa": {"chunk_size": 50}}, student, teacher)   # 9x13 = 117 positions: 3 chunks
    student_out, labels, teacher_out = run_pair(student, teacher, batch, crop)
    loss = criterion(student_out, labels, teacher_out)["hfa"]
    assert loss.dim() == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    _check_gradients(criterion.terms["hfa"], student)


def test_real_width_pair(make_criterion, run_pair, freeze):
    """SegFormer-B0 teacher (160 channels at stride 16) -> DeepLabV3-R18 student (256 at stride 8)."""
    torch.manual_seed(0)
    teacher = freeze(build_model("segformer_b0", 5))
    student = build_model("deeplabv3_r18", 5)
    criterion = make_criterion({"hfa": {}, "gla": {}}, student, teacher)
    assert criterion.terms["hfa"].teacher_proj.in_channels == 160
    assert criterion.terms["hfa"].teacher_proj.out_channels == 256
    assert criterion.terms["hfa"].context_sides == ("student",)
    student_out, labels, teacher_out = run_pair(student, teacher, 2, (64, 96))
    terms = criterion(student_out, labels, teacher_out)
    sum(terms.values()).backward()
    assert all(torch.isfinite(value) for value in terms.values())
    _check_gradients(criterion.terms["hfa"], student)


def test_zero_offset_warp_is_identity_with_align_corners_true_only():
    torch.manual_seed(0)
    feat = torch.randn(2, 3, 9, 13, dtype=torch.float64)
    zero = torch.zeros(2, 2, 9, 13, dtype=torch.float64)
    torch.testing.assert_close(warp(feat, zero, align_corners=True), feat, atol=1e-12, rtol=0)
    feat32 = feat.float()
    torch.testing.assert_close(warp(feat32, zero.float(), align_corners=True), feat32, atol=1e-5, rtol=0)
    # The authors' setting reads the same grid against pixel edges: shrunk towards the centre, zeros at the border.
    assert (warp(feat, zero, align_corners=False) - feat).abs().max() > 0.1


@pytest.mark.parametrize("axis", ["x", "y"])
def test_offset_units_and_channel_order(axis):
    """Channel 0 moves along x (width), channel 1 along y; one unit is 1/size of the [-1, 1] grid."""
    torch.manual_seed(0)
    height, width = 6, 11
    feat = torch.randn(1, 2, height, width, dtype=torch.float64)
    offset = torch.zeros(1, 2, height, width, dtype=torch.float64)
    if axis == "x":
        offset[:, 0] = width * 2.0 / (width - 1)      # one pixel to the right
        expected = torch.cat([feat[..., 1:], torch.zeros(1, 2, height, 1, dtype=torch.float64)], dim=3)
    else:
        offset[:, 1] = height * 2.0 / (height - 1)    # one pixel down
        expected = torch.cat([feat[:, :, 1:], torch.zeros(1, 2, 1, width, dtype=torch.float64)], dim=2)
    torch.testing.assert_close(warp(feat, offset, align_corners=True), expected, atol=1e-12, rtol=0)


def test_offset_head_starts_at_zero(tiny_models, make_criterion):
    term = make_criterion({"hfa": {}}, tiny_models["deeplab"], tiny_models["segformer"]).terms["hfa"]
    last = term.offset_head.offset
    assert last.out_channels == 2 and last.kernel_size == (3, 3)
    assert torch.count_nonzero(last.weight) == 0 and torch.count_nonzero(last.bias) == 0
    assert torch.count_nonzero(term.offset_head(torch.randn(2, last.in_channels, 5, 7))) == 0


def _bn(x, module):
    return F.batch_norm(x, None, None, module.weight, module.bias, training=True, eps=module.eps)


def _manual_rrb(rrb, x):
    u = F.conv2d(x, rrb.unify.weight)
    conv_a, norm_a, conv_b = rrb.residual
    r = F.conv2d(_bn(F.conv2d(u, conv_a.weight, padding=1), norm_a), conv_b.weight, padding=1)
    return _bn(u + r, rrb.norm)


def _manual_warp(feat, offset):
    """Identity from affine_grid (a different construction than the term's), plus offset / (w, h)."""
    b, _, h, w = feat.shape
    theta = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(b, 2, 3)
    grid = F.affine_grid(theta, (b, 1, h, w), align_corners=True)
    grid = grid + torch.stack([offset[:, 0] / w, offset[:, 1] / h], dim=-1)
    return F.grid_sample(feat, grid, align_corners=True)


@pytest.mark.parametrize("context_on", ["student", "teacher", "none"])
def test_loss_equals_steps_one_to_six(tiny_models, make_criterion, context_on):
    torch.manual_seed(0)
    student, teacher = tiny_models["segformer"], tiny_models["deeplab"]   # 24 channels <- 256 channels
    term = make_criterion({"hfa": {"context_on": context_on, "chunk_size": 7}}, student, teacher).terms["hfa"]
    with torch.no_grad():
        term.offset_head.offset.weight.normal_(0, 0.05)   # a non-trivial warp, so steps 4-5 are exercised
        term.offset_head.offset.bias.normal_(0, 0.5)
    feat_s = torch.randn(2, 24, 5, 7)
    feat_t = torch.randn(2, 256, 9, 13)
    dummy = [torch.zeros(1)] * 2
    loss = term(SegOutput(torch.zeros(1), dummy + [feat_s, torch.zeros(1)]), None,
                SegOutput(torch.zeros(1), dummy + [feat_t, torch.zeros(1)]))

    with torch.no_grad():
        t = F.interpolate(feat_t, size=(5, 7), mode="bilinear", align_corners=False)
        t = F.conv2d(t, term.teacher_proj.weight, term.teacher_proj.bias)
        s = global_context_direct(feat_s) if context_on == "student" else feat_s
        t = global_context_direct(t) if context_on == "teacher" else t
        s_ref, t_ref = _manual_rrb(term.student_rrb, s), _manual_rrb(term.teacher_rrb, t)
        offset = term.offset_head(s_ref * t_ref)
        assert offset.abs().max() > 0.1
        expected = F.mse_loss(_manual_warp(t_ref, offset), s_ref)
    torch.testing.assert_close(loss.detach(), expected, atol=1e-6, rtol=1e-5)


def test_align_corners_chunk_size_and_context_options_reach_the_computation(tiny_models, make_criterion, run_pair):
    student, teacher = tiny_models["deeplab"], tiny_models["segformer"]
    base = make_criterion({"hfa": {}}, student, teacher).terms["hfa"]
    chunked = make_criterion({"hfa": {"chunk_size": 7}}, student, teacher).terms["hfa"]
    authors = make_criterion({"hfa": {"align_corners": False}}, student, teacher).terms["hfa"]
    direct = make_criterion({"hfa": {"context": "direct"}}, student, teacher).terms["hfa"]
    fused = make_criterion({"hfa": {"context": "sdpa"}}, student, teacher).terms["hfa"]
    for term in (chunked, authors, direct, fused):
        term.load_state_dict(base.state_dict())
    student_out, _, teacher_out = run_pair(student, teacher, 2, (64, 64))
    student_out = student_out._replace(features=[f.detach() for f in student_out.features])
    with torch.no_grad():
        losses = [term(student_out, None, teacher_out).item() for term in (base, chunked, authors, direct, fused)]
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert abs(losses[2] - losses[0]) > 1e-3 * losses[0]
    assert losses[3] == pytest.approx(losses[0], rel=1e-5) and losses[4] == pytest.approx(losses[0], rel=1e-5)
    assert "context=sdpa" in repr(fused)


class _Mystery(nn.Module):
    """A model of unknown family: auto cannot decide for it."""

    def __init__(self, like):
        super().__init__()
        self.feature_info = like.feature_info


@pytest.mark.parametrize("student_name,teacher_name,sides", [
    ("deeplab", "segformer", ("student",)), ("segformer", "deeplab", ("teacher",)),
    ("deeplab", "deeplab", ("student", "teacher")), ("segformer", "segformer", ())])
def test_auto_context_goes_to_the_cnn_side(tiny_models, make_criterion, student_name, teacher_name, sides):
    term = make_criterion({"hfa": {}}, tiny_models[student_name], tiny_models[teacher_name]).terms["hfa"]
    assert term.context_sides == sides


def test_auto_context_follows_the_registered_family(monkeypatch, make_criterion, tiny_models):
    """The family comes from the model registry through build_model: a SegFormer registered as a CNN gets the
    context, so no class-name table decides."""
    from hmkd.models import build_model, model_entry, registry

    monkeypatch.setitem(registry._MODELS, "segformer_tiny_cnn", model_entry("segformer_tiny")._replace(family="cnn"))
    student = build_model("segformer_tiny_cnn", 5)
    assert student.family == "cnn"
    term = make_criterion({"hfa": {}}, student, tiny_models["segformer"]).terms["hfa"]
    assert term.context_sides == ("student",)


def test_auto_context_refuses_an_unknown_family_but_explicit_works(tiny_models, make_criterion):
    mystery = _Mystery(tiny_models["deeplab"])
    with pytest.raises(ValueError, match=r"loss\.terms\.hfa\.context_on"):
        make_criterion({"hfa": {}}, mystery, tiny_models["segformer"])
    term = make_criterion({"hfa": {"context_on": "student"}}, mystery, tiny_models["segformer"]).terms["hfa"]
    assert term.context_sides == ("student",)
    mystery.family = "transformer"
    assert make_criterion({"hfa": {}}, mystery, tiny_models["segformer"]).terms["hfa"].context_sides == ()
