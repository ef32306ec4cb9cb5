"""KD and CWD: zero on identical logits, equal to hand/direct computations, teacher resized to the student's size."""
import math

import pytest
import torch
import torch.nn.functional as F

from hmkd.models.output import SegOutput


def _out(logits):
    return SegOutput(logits, [])


@pytest.fixture
def logit_terms(tiny_models, make_criterion):
    """``logit_terms(cfg)`` -> the built criterion's terms, for a SegFormer teacher and a DeepLabV3 student."""
    return lambda cfg: make_criterion(cfg, tiny_models["deeplab"], tiny_models["segformer"]).terms


@pytest.mark.parametrize("name,temperature", [("kd", 1.0), ("kd", 4.0), ("cwd", 4.0), ("cwd", 1.0)])
def test_identical_logits_give_zero(logit_terms, name, temperature):
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 4, 6) * 3
    term = logit_terms({name: {"temperature": temperature}})[name]
    assert term(_out(logits), None, _out(logits.clone())).item() == 0.0


def test_kd_by_hand(logit_terms):
    """Two classes, two pixels, T = 2: KL(p_t || p_s) per pixel, mean over pixels, times T^2."""
    student = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]]])   # (1, 2, 1, 2): pixel 0 logits (1, 0), pixel 1 (0, 2)
    teacher = torch.tensor([[[[3.0, 0.0]], [[0.0, 0.0]]]])
    temp = 2.0

    def softmax2(a, b):
        ea, eb = math.exp(a / temp), math.exp(b / temp)
        return ea / (ea + eb), eb / (ea + eb)

    total = 0.0
    for (sa, sb), (ta, tb) in [((1.0, 0.0), (3.0, 0.0)), ((0.0, 2.0), (0.0, 0.0))]:
        ps, pt = softmax2(sa, sb), softmax2(ta, tb)
        total += sum(t * math.log(t / s) for t, s in zip(pt, ps))
    expected = total / 2 * temp ** 2
    loss = logit_terms({"kd": {"temperature": temp}})["kd"](_out(student), None, _out(teacher))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def _pixel_kl(student, teacher, temp):
    log_s = torch.log_softmax(student / temp, dim=1)
    log_t = torch.log_softmax(teacher / temp, dim=1)
    return (log_t.exp() * (log_t - log_s)).sum(1)


def test_kd_resizes_teacher_to_the_student_size(logit_terms):
    """Student at 1/8 (5x7), teacher at 1/4 (10x14): the teacher is resized, bilinear, align_corners=False."""
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 5, 5, 7), torch.randn(2, 5, 10, 14)
    resized = F.interpolate(teacher, size=(5, 7), mode="bilinear", align_corners=False)
    loss = logit_terms({"kd": {"temperature": 4.0}})["kd"](_out(student), None, _out(teacher))
    torch.testing.assert_close(loss, _pixel_kl(student, resized, 4.0).mean() * 16)


def test_kd_ignore_void_averages_over_labelled_pixels_only(logit_terms):
    torch.manual_seed(0)
    student, teacher = torch.randn(1, 5, 3, 4), torch.randn(1, 5, 3, 4)
    labels = torch.randint(0, 5, (1, 6, 8))                 # full resolution: 2x the logits
    labels[0, 0, 0] = 255                                   # picked by nearest downsampling -> logit pixel (0, 0)
    labels[0, 4, 6] = 255                                   # -> logit pixel (2, 3)
    labels[0, 1, 1] = 255                                   # between samples: not picked, pixel (0, 0) already void
    labels[0, 3, 3] = 255                                   # not picked: logit pixel (1, 1) stays labelled
    valid = torch.ones(1, 3, 4, dtype=torch.bool)
    valid[0, 0, 0] = valid[0, 2, 3] = False
    per_pixel = _pixel_kl(student, teacher, 1.0)
    terms = logit_terms({"kd": {}})
    void_terms = logit_terms({"kd": {"ignore_void": True}})
    torch.testing.assert_close(void_terms["kd"](_out(student), labels, _out(teacher)), per_pixel[valid].mean())
    torch.testing.assert_close(terms["kd"](_out(student), labels, _out(teacher)), per_pixel.mean())


def test_cwd_by_direct_computation(logit_terms):
    """Per (image, class): spatial softmax at T, KL(teacher || student) summed; total * T^2 / (B * K)."""
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 3, 4, 5) * 2, torch.randn(2, 3, 8, 10) * 2
    resized = F.interpolate(teacher, size=(4, 5), mode="bilinear", align_corners=False)
    temp = 4.0
    total = 0.0
    for b in range(2):
        for c in range(3):
            p_s = torch.softmax(student[b, c].flatten() / temp, dim=0)
            p_t = torch.softmax(resized[b, c].flatten() / temp, dim=0)
            total += (p_t * (p_t.log() - p_s.log())).sum().item()
    expected = total * temp ** 2 / (2 * 3)
    loss = logit_terms({"cwd": {}})["cwd"](_out(student), None, _out(teacher))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", ["kd", "cwd"])
def test_gradient_reaches_student_logits_only(logit_terms, name):
    torch.manual_seed(0)
    student = torch.randn(2, 5, 3, 4, requires_grad=True)
    teacher = torch.randn(2, 5, 6, 8, requires_grad=True)   # as if the teacher ran with autograd on
    logit_terms({name: {}})[name](_out(student), None, _out(teacher)).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


@pytest.mark.parametrize("name", ["kd", "cwd"])
def test_class_count_mismatch_is_an_error(logit_terms, name):
    with pytest.raises(ValueError, match=r"loss\.terms\.%s.*5 classes.*4" % name):
        logit_terms({name: {}})[name](_out(torch.randn(1, 5, 2, 2)), None, _out(torch.randn(1, 4, 2, 2)))
