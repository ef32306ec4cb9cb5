"""The teacher stays outside the trainable module: no gradient, no parameter in the criterion, unchanged by a step."""
import pytest
import torch

ALL_TERMS = {"ce": {}, "gla": {}, "hfa": {}, "kd": {}, "cwd": {}, "fitnet": {}}
LEARNED_TERMS = ("gla", "hfa", "fitnet")


@pytest.mark.parametrize("student_name,teacher_name", [("deeplab", "segformer"), ("segformer", "deeplab")])
def test_no_gradient_reaches_a_teacher_run_with_autograd_on(fresh_model, make_criterion, student_name,
                                                             teacher_name):
    """Stricter than the engine (which uses no_grad): the terms themselves detach what they read."""
    student, teacher = fresh_model(student_name, seed=1), fresh_model(teacher_name, seed=2).eval()
    criterion = make_criterion(ALL_TERMS, student, teacher)
    images, labels = torch.randn(2, 3, 64, 72), torch.randint(0, 5, (2, 64, 72))
    teacher_out = teacher(images)
    assert teacher_out.logits.requires_grad
    sum(criterion(student.train()(images), labels, teacher_out).values()).backward()
    leaked = [name for name, param in teacher.named_parameters() if param.grad is not None]
    assert leaked == []
    assert next(student.parameters()).grad.abs().sum() > 0


def test_optimizer_step_trains_student_and_alignment_but_not_teacher(fresh_model, freeze, make_criterion, run_pair):
    student, teacher = fresh_model("deeplab", seed=1), freeze(fresh_model("segformer", seed=2))
    criterion = make_criterion(ALL_TERMS, student, teacher)
    teacher_ids = {id(param) for param in teacher.parameters()}
    assert not teacher_ids & {id(param) for param in criterion.parameters()}
    assert not any(key.startswith(("teacher.", "student.")) for key in criterion.state_dict())

    params = list(student.parameters()) + list(criterion.parameters())
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in student.state_dict().items()}
    terms_before = {k: v.clone() for k, v in criterion.state_dict().items()}

    student_out, labels, teacher_out = run_pair(student, teacher, 2, (64, 72))
    criterion.train()
    terms = criterion(student_out, labels, teacher_out)
    optimizer.zero_grad()
    sum(terms.values()).backward()
    optimizer.step()

    assert all(torch.equal(v, teacher_before[k]) for k, v in teacher.state_dict().items())
    assert not torch.equal(student.state_dict()["backbone.conv1.weight"], student_before["backbone.conv1.weight"])
    after = criterion.state_dict()
    for term in LEARNED_TERMS:
        changed = [k for k in after if k.startswith("terms.%s." % term) and k.endswith("weight")
                   and not torch.equal(after[k], terms_before[k])]
        assert changed, term
    offset_key = "terms.hfa.offset_head.offset.weight"   # the zero-initialised conv learns from the first step
    assert not torch.equal(after[offset_key], terms_before[offset_key])


@pytest.mark.parametrize("term", sorted(set(ALL_TERMS) - {"ce"}))
def test_a_term_that_skips_teacher_logits_really_does_not_read_them(term, fresh_model, make_criterion):
    """The trainer drops the teacher's decode head when no term needs its logits; the declaration must be true."""
    student, teacher = fresh_model("deeplab", seed=1).train(), fresh_model("segformer", seed=2).eval()
    criterion = make_criterion({term: {}}, student, teacher)
    images, labels = torch.randn(2, 3, 64, 72), torch.randint(0, 5, (2, 64, 72))
    with torch.no_grad():
        teacher_out = teacher(images, with_logits=criterion.needs_teacher_logits)
    assert criterion.needs_teacher_logits == (term in ("kd", "cwd"))
    assert (teacher_out.logits is None) == (not criterion.needs_teacher_logits)
    value = criterion(student(images), labels, teacher_out)[term]
    assert torch.isfinite(value)


def test_any_term_reading_logits_makes_the_criterion_ask_for_them(fresh_model, make_criterion):
    student, teacher = fresh_model("deeplab", seed=1), fresh_model("segformer", seed=2)
    assert not make_criterion({"ce": {}, "gla": {}, "hfa": {}}, student, teacher).needs_teacher_logits
    assert make_criterion({"ce": {}, "hfa": {}, "kd": {}}, student, teacher).needs_teacher_logits
