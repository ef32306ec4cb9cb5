"""FitNet: MSE of a learned 1x1 projection of the student map against the resized teacher map."""
import pytest
import torch
import torch.nn.functional as F

from hmkd.models.output import SegOutput


def _outputs(feat_s, feat_t, stage=2):
    fill = [torch.zeros(1)] * 4
    return (SegOutput(torch.zeros(1), fill[:stage] + [feat_s] + fill[stage + 1:]),
            SegOutput(torch.zeros(1), fill[:stage] + [feat_t] + fill[stage + 1:]))


@pytest.mark.parametrize("bn", [False, True])
def test_equals_direct_computation(tiny_models, make_criterion, bn):
    """DeepLabV3 student stage 3 (256 channels, 9x13) <- SegFormer teacher stage 3 (24 channels, 5x7)."""
    torch.manual_seed(0)
    term = make_criterion({"fitnet": {"bn": bn}}, tiny_models["deeplab"], tiny_models["segformer"]).terms["fitnet"]
    conv = term.proj[0]
    assert (conv.in_channels, conv.out_channels, conv.bias) == (256, 24, None)
    feat_s = torch.randn(2, 256, 9, 13, requires_grad=True)
    feat_t = torch.randn(2, 24, 5, 7, requires_grad=True)
    student_out, teacher_out = _outputs(feat_s, feat_t)
    loss = term(student_out, None, teacher_out)

    projected = F.conv2d(feat_s.detach(), conv.weight.detach())
    if bn:
        norm = term.proj[1]
        projected = F.batch_norm(projected, None, None, norm.weight.detach(), norm.bias.detach(), training=True)
    target = F.interpolate(feat_t.detach(), size=(9, 13), mode="bilinear", align_corners=False)
    expected = ((projected - target) ** 2).mean()
    torch.testing.assert_close(loss.detach(), expected)

    loss.backward()
    assert conv.weight.grad.abs().sum() > 0 and feat_s.grad.abs().sum() > 0
    assert feat_t.grad is None


def test_other_stage_and_direction(tiny_models, make_criterion):
    """SegFormer student stage 1 (8 channels) <- DeepLabV3 teacher stage 1 (64 channels), same stride."""
    term = make_criterion({"fitnet": {"stage": 0}}, tiny_models["segformer"], tiny_models["deeplab"]).terms["fitnet"]
    assert (term.proj[0].in_channels, term.proj[0].out_channels) == (8, 64) and len(term.proj) == 1
    student_out, teacher_out = _outputs(torch.randn(1, 8, 6, 7), torch.randn(1, 64, 6, 7), stage=0)
    assert torch.isfinite(term(student_out, None, teacher_out))
