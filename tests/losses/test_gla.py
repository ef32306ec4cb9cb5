"""GLA: patch relations of both sides, built from feature_info, any crop/batch/direction, equal to the formula."""
import math

import pytest
import torch
import torch.nn.functional as F

from hmkd.models.output import SegOutput


def _ceil_div(a, b):
    return -(-a // b)


@pytest.mark.parametrize("student_name,teacher_name", [("deeplab", "segformer"), ("segformer", "deeplab")])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("crop", [(64, 64), (72, 100)])
def test_forward_backward_any_direction_batch_and_crop(tiny_models, fresh_model, make_criterion, run_pair,
                                                       student_name, teacher_name, batch, crop):
    student, teacher = fresh_model(student_name), tiny_models[teacher_name]
    criterion = make_criterion({"gla": {"patch_size": 8}}, student, teacher)
    student_out, labels, teacher_out = run_pair(student, teacher, batch, crop)
    loss = criterion(student_out, labels, teacher_out)["gla"]
    assert loss.dim() == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()

    term = criterion.terms["gla"]
    feat = student_out.features[0]
    tokens = _ceil_div(feat.shape[2], 8) * _ceil_div(feat.shape[3], 8)   # 72x100 -> 18x25 map -> 3x4 patches
    with torch.no_grad():
        relation = term.student_relation(feat)
    assert relation.shape == (batch, tokens, tokens)
    torch.testing.assert_close(relation.sum(-1), torch.ones(batch, tokens))
    stem = next(student.parameters())
    assert stem.grad is not None and stem.grad.abs().sum() > 0
    for name, param in term.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def _manual_relation(side, feat_bchw, dim, patch):
    """PatchRelation written out with functional ops and an explicit zero canvas for the padding."""
    if isinstance(side.proj, torch.nn.Conv2d):
        feat_bchw = F.conv2d(feat_bchw, side.proj.weight, side.proj.bias)
    b, c, h, w = feat_bchw.shape
    canvas = torch.zeros(b, c, _ceil_div(h, patch) * patch, _ceil_div(w, patch) * patch)
    canvas[:, :, :h, :w] = feat_bchw
    tokens = F.conv2d(canvas, side.patch_embed.weight, side.patch_embed.bias, stride=patch).flatten(2).transpose(1, 2)
    tokens = F.layer_norm(tokens, (dim,), side.norm.weight, side.norm.bias, side.norm.eps)
    query = tokens @ side.query.weight.t() + side.query.bias
    key = tokens @ side.key.weight.t() + side.key.bias
    return torch.softmax(query @ key.transpose(1, 2) / math.sqrt(dim), dim=-1)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_loss_equals_the_formula_with_padding_and_resize(tiny_models, make_criterion, reduction):
    """Student stage-1 map 18x25 (not a multiple of P = 4), teacher map at half size: resized to the student's."""
    torch.manual_seed(0)
    student, teacher = tiny_models["deeplab"], tiny_models["segformer"]
    term = make_criterion({"gla": {"dim": 16, "patch_size": 4, "reduction": reduction}}, student, teacher).terms["gla"]
    feat_s = torch.randn(2, student.feature_info[0].channels, 18, 25)
    feat_t = torch.randn(2, teacher.feature_info[0].channels, 9, 13)
    dummy = [torch.zeros(1)] * 3
    loss = term(SegOutput(torch.zeros(1), [feat_s] + dummy), None, SegOutput(torch.zeros(1), [feat_t] + dummy))

    with torch.no_grad():
        relation_s = _manual_relation(term.student_relation, feat_s, 16, 4)
        teacher_resized = F.interpolate(feat_t, size=(18, 25), mode="bilinear", align_corners=False)
        relation_t = _manual_relation(term.teacher_relation, teacher_resized, 16, 4)
    squared = (relation_t - relation_s) ** 2
    assert relation_s.shape == (2, 5 * 7, 5 * 7)
    expected = squared.sum() if reduction == "sum" else squared.mean()
    torch.testing.assert_close(loss.detach(), expected, atol=1e-7, rtol=1e-5)


def test_sum_is_the_authors_scale(tiny_models, make_criterion, run_pair):
    """Same weights, same inputs: sum = mean * B * M * M, so the sum grows with batch and crop size."""
    student, teacher = tiny_models["deeplab"], tiny_models["segformer"]
    mean_term = make_criterion({"gla": {}}, student, teacher).terms["gla"]
    sum_term = make_criterion({"gla": {"reduction": "sum"}}, student, teacher).terms["gla"]
    sum_term.load_state_dict(mean_term.state_dict())
    student_out, _, teacher_out = run_pair(student, teacher, 2, (64, 96))
    tokens = (16 // 8) * (24 // 8)
    with torch.no_grad():
        ratio = sum_term(student_out, None, teacher_out) / mean_term(student_out, None, teacher_out)
    assert ratio.item() == pytest.approx(2 * tokens * tokens, rel=1e-4)


def test_projection_only_where_widths_differ(tiny_models, make_criterion):
    student, teacher = tiny_models["deeplab"], tiny_models["segformer"]   # stage-1 widths 64 and 8
    term = make_criterion({"gla": {"dim": 64}}, student, teacher).terms["gla"]
    assert isinstance(term.student_relation.proj, torch.nn.Identity)
    assert isinstance(term.teacher_relation.proj, torch.nn.Conv2d)
    assert term.teacher_relation.proj.in_channels == 8 and term.teacher_relation.proj.out_channels == 64


def test_stages_of_different_strides(tiny_models, fresh_model, make_criterion, run_pair):
    """Stage 3 is stride 16 on SegFormer and 8 on DeepLabV3: the teacher map is resized to the student's."""
    student, teacher = fresh_model("segformer"), tiny_models["deeplab"]
    criterion = make_criterion({"gla": {"stage": 2, "patch_size": 2}}, student, teacher)
    student_out, labels, teacher_out = run_pair(student, teacher, 2, (72, 100))
    assert student_out.features[2].shape[2:] != teacher_out.features[2].shape[2:]
    loss = criterion(student_out, labels, teacher_out)["gla"]
    loss.backward()
    assert torch.isfinite(loss) and student.backbone.block3[0].attn.q.weight.grad.abs().sum() > 0
