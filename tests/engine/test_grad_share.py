"""Gradient shares: each term's gradient norm on the student's parameters, equal to a direct per-term
autograd.grad; shares sum to 1; a term under 1% is named once in train.log; the step's own update is unchanged."""
import json
import math
import os

import pytest
import torch

from hmkd.engine.grad_share import grad_share_due, gradient_shares, switched_off, term_gradient_norms
from hmkd.losses.criterion import TermContext, build_criterion
from hmkd.models import build_model

TERMS = {"ce": {"weight": 1.0}, "gla": {"weight": 1.0, "patch_size": 2}, "hfa": {"weight": 0.5}}


def _pair_and_batch():
    torch.manual_seed(0)
    student, teacher = build_model("deeplabv3_tiny", 4), build_model("segformer_tiny", 4).eval()
    criterion = build_criterion(TERMS, TermContext(student, teacher, 255))
    images = torch.randn(2, 3, 32, 48)
    labels = torch.randint(0, 4, (2, 32, 48))
    with torch.no_grad():
        teacher_out = teacher(images)
    return student, criterion, images, labels, teacher_out


def test_norms_equal_a_direct_autograd_grad_per_term_and_shares_sum_to_one():
    student, criterion, images, labels, teacher_out = _pair_and_batch()
    params = [p for p in student.parameters() if p.requires_grad]
    torch.manual_seed(5)   # the head's dropout draws the same mask in every forward
    terms = criterion(student(images), labels, teacher_out)
    norms = term_gradient_norms(terms, params)

    for name in TERMS:   # each term on its own fresh graph, as a reader would check by hand
        torch.manual_seed(5)
        value = criterion(student(images), labels, teacher_out)[name]
        grads = torch.autograd.grad(value, params, allow_unused=True)
        direct = math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads if g is not None))
        assert norms[name] == pytest.approx(direct, rel=1e-5), name
        assert direct > 0
    shares = gradient_shares(norms)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["hfa"] == pytest.approx(norms["hfa"] / sum(norms.values()))
    # the graph is kept: the step's own backward still runs and gives the summed gradient
    sum(terms.values()).backward()
    assert all(p.grad is not None for p in params[:3])


def test_loss_scale_is_divided_out():
    student, criterion, images, labels, teacher_out = _pair_and_batch()
    params = [p for p in student.parameters() if p.requires_grad]
    terms = criterion(student(images), labels, teacher_out)
    plain = term_gradient_norms(terms, params)
    scaled = term_gradient_norms(terms, params, scale=1024.0)
    for name in TERMS:
        assert scaled[name] == pytest.approx(plain[name], rel=1e-5)


def test_term_without_a_path_to_the_student_has_share_zero():
    student, criterion, images, labels, teacher_out = _pair_and_batch()
    params = [p for p in student.parameters() if p.requires_grad]
    terms = dict(criterion(student(images), labels, teacher_out))
    terms["constant"] = torch.tensor(3.0)
    shares = gradient_shares(term_gradient_norms(terms, params))
    assert shares["constant"] == 0.0 and "constant" in switched_off(shares)
    assert gradient_shares({"a": 0.0, "b": 0.0}) == {"a": 0.0, "b": 0.0}


def test_switched_off_is_below_one_percent():
    assert switched_off({"ce": 0.985, "gla": 0.0099, "hfa": 0.0051}) == ["gla", "hfa"]
    assert switched_off({"ce": 0.99, "gla": 0.01}) == []


@pytest.mark.parametrize("interval,due", [(1000, [1, 1000, 2000]), (3, [1, 3, 6, 9]), (0, [])])
def test_diagnostic_steps(interval, due):
    assert [s for s in range(1, 2001) if grad_share_due(s, interval)][:4] == due[:4]


def test_trainer_records_shares_and_names_a_switched_off_term(tmp_path):
    """The project's GLA at its mean reduction, next to CE, is under 1% of the gradient on the tiny pair: the run
    says so once; the diagnostic steps (1 and every 2) leave the update what it is without the diagnostic."""
    from engine_config import tiny_config

    from hmkd.config import config_from_dict
    from hmkd.engine.trainer import Trainer

    teacher_path = tmp_path / "teacher.pth"
    torch.manual_seed(1)
    torch.save({"model": build_model("segformer_tiny", 3).state_dict()}, teacher_path)

    def run(name, interval):
        cfg = config_from_dict(tiny_config(
            teacher={"name": "segformer_tiny", "checkpoint": str(teacher_path)},
            loss={"terms": {"ce": {"weight": 1.0}, "aux_ce": {"weight": 0.4}, "gla": {"weight": 1e-3, "patch_size": 2}}},
            schedule={"max_iters": 4}, train={"grad_share_interval": interval, "eval_interval": 0}))
        trainer = Trainer(cfg, str(tmp_path / name))
        trainer.run()
        return trainer, str(tmp_path / name)

    trainer, run_dir = run("diagnosed", 2)
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    shares = [r for r in rows if "grad_share/ce" in r]
    assert [r["step"] for r in shares] == [1, 2, 4]
    for row in shares:
        assert row["grad_share/ce"] + row["grad_share/aux_ce"] + row["grad_share/gla"] == pytest.approx(1.0)
        assert row["grad_share/gla"] < 0.01
    log = open(os.path.join(run_dir, "train.log")).read()
    assert log.count("loss term gla is present but switched off by its scale") == 1
    assert "loss term gla: weight 0.001" in log and "reduction=mean" in log

    plain, _ = run("plain", 0)
    assert not any("grad_share/" in line for line in open(os.path.join(tmp_path, "plain", "metrics.jsonl")))
    for (key, a), b in zip(trainer.module.state_dict().items(), plain.module.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)
