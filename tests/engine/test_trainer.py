"""The training loop end to end on tiny models: outputs of a run, NaN stops, teacher checks, accumulation."""
import json
import os

import pytest
import torch
from runner import run_cli

from hmkd.config import config_from_dict
from hmkd.engine.trainer import Trainer


def test_run_directory_holds_every_output(tmp_path, write_config):
    run_dir = str(tmp_path / "run")
    result = run_cli("train", write_config(), "--run-dir", run_dir)
    assert result.returncode == 0, result.stderr
    for name in ("config.yaml", "metrics.jsonl", "train.log", "eval.json", "model.pth", "DONE",
                 "plots/losses.png", "plots/val_miou.png", "checkpoints/latest"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    record = json.load(open(os.path.join(run_dir, "eval.json")))
    assert 0 <= record["mIoU"] <= 1 and record["step"] == 12 and set(record["per_class"]) == {
        "class_0", "class_1", "class_2"}
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    assert [r["step"] for r in rows if "loss/total" in r] == list(range(1, 13))
    shares = [r for r in rows if "grad_share/ce" in r]   # step 1 is a gradient-share step
    assert [r["step"] for r in shares] == [1] and shares[0]["grad_norm/ce"] > 0
    assert sum(v for k, v in shares[0].items() if k.startswith("grad_share/")) == pytest.approx(1.0)
    assert "mIoU" in result.stdout  # the table
    again = run_cli("train", write_config(), "--run-dir", run_dir)  # DONE: nothing is redone
    assert again.returncode == 0 and "training" not in again.stdout


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, write_config):
    run_dir = str(tmp_path / "run")
    assert run_cli("train", write_config(schedule={"max_iters": 6}), "--run-dir", run_dir).returncode == 0
    os.remove(os.path.join(run_dir, "DONE"))
    latest = open(os.path.join(run_dir, "checkpoints", "latest")).read()
    result = run_cli("train", write_config(schedule={"max_iters": 12}), "--run-dir", run_dir,
                     "loss.terms.aux_ce.weight=.inf")
    assert result.returncode == 2
    assert "loss term aux_ce is inf at step 7" in result.stderr and "Traceback" not in result.stderr
    assert open(os.path.join(run_dir, "checkpoints", "latest")).read() == latest
    assert not os.path.exists(os.path.join(run_dir, "DONE"))


def test_missing_teacher_checkpoint_stops_before_training(tmp_path, write_config):
    run_dir = str(tmp_path / "run")
    config = write_config(teacher={"name": "segformer_tiny", "checkpoint": str(tmp_path / "no_teacher.pth")})
    result = run_cli("distill", config, "--run-dir", run_dir)
    assert result.returncode == 2 and "no_teacher.pth" in result.stderr
    assert not os.path.exists(os.path.join(run_dir, "checkpoints"))


def test_distill_without_teacher_section_is_refused(tmp_path, write_config):
    result = run_cli("distill", write_config(), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and "no teacher section" in result.stderr


def test_mismatched_teacher_checkpoint_names_it(tmp_path, write_config):
    from hmkd.models import build_model

    path = tmp_path / "teacher.pth"
    torch.save({"model": build_model("deeplabv3_tiny", 3).state_dict()}, path)
    config = write_config(teacher={"name": "segformer_tiny", "checkpoint": str(path)})
    result = run_cli("distill", config, "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and "teacher.pth" in result.stderr


def test_bad_dataset_root_is_one_line_error(tmp_path, write_config):
    config = write_config(data={"name": "cityscapes", "root": str(tmp_path / "nowhere"), "num_classes": None,
                                "image_size": [64, 96], "num_train": 64, "num_val": 16})
    result = run_cli("train", config, "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and "nowhere" in result.stderr and "Traceback" not in result.stderr


def test_gradient_accumulation_consumes_micro_batches(tmp_path):
    from engine_config import tiny_config

    cfg = config_from_dict(tiny_config(schedule={"max_iters": 3}, train={"grad_accum": 2, "checkpoint_interval": 3}))
    trainer = Trainer(cfg, str(tmp_path / "run"))
    batches = trainer.batches()
    for _ in range(3):
        trainer.train_step(batches)
    assert trainer.step == 3 and trainer.scheduler.last_epoch == 3
    # 12 samples / batch 2 = 6 batches per epoch: 6 micro-batches fill epoch 0 exactly.
    assert (trainer.epoch, trainer.consumed) == (0, 6)


def test_distillation_trains_student_and_alignment_not_teacher(tmp_path):
    from engine_config import tiny_config

    from hmkd.models import build_model

    teacher_path = tmp_path / "teacher.pth"
    torch.manual_seed(1)
    torch.save({"model": build_model("segformer_tiny", 3).state_dict()}, teacher_path)
    cfg = config_from_dict(tiny_config(
        teacher={"name": "segformer_tiny", "checkpoint": str(teacher_path)},
        loss={"terms": {"ce": {"weight": 1.0}, "aux_ce": {"weight": 0.4},
                        "gla": {"weight": 1.0, "dim": 16, "patch_size": 2},
                        "hfa": {"weight": 1.0}}},
        schedule={"max_iters": 2}))
    trainer = Trainer(cfg, str(tmp_path / "run"))
    head_calls = []
    trainer.teacher.decode_head.register_forward_hook(lambda *_: head_calls.append(1))
    teacher_before = {k: v.clone() for k, v in trainer.teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in trainer.module.student.state_dict().items()}
    align_before = {k: v.clone() for k, v in trainer.module.criterion.state_dict().items()}
    assert align_before, "GLA and HFA own alignment modules"
    batches = trainer.batches()
    trainer.train_step(batches)
    trainer.train_step(batches)
    assert head_calls == []  # GLA and HFA read teacher features only: its decode head never runs in training
    for key, value in trainer.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key
    assert all(p.grad is None for p in trainer.teacher.parameters())
    changed = lambda before, after: any(not torch.equal(before[k], v) for k, v in after.items())  # noqa: E731
    assert changed(student_before, trainer.module.student.state_dict())
    assert changed(align_before, trainer.module.criterion.state_dict())
    trainer.finish()
    exported = torch.load(os.path.join(str(tmp_path / "run"), "model.pth"))["model"]
    assert set(exported) == set(trainer.module.student.state_dict())
    checkpoint = trainer.checkpoints.load_latest()["model"]
    assert any(k.startswith("criterion.terms.hfa.") for k in checkpoint)


def test_aux_head_without_its_loss_is_refused(tmp_path, write_config):
    result = run_cli("train", write_config(loss={"terms": {"ce": {"weight": 1.0}}}), "--run-dir", str(tmp_path / "r"))
    assert result.returncode == 2 and "aux_head is true but loss.terms has no aux_ce" in result.stderr


def test_teacher_logits_are_computed_when_a_term_reads_them(tmp_path):
    from engine_config import tiny_config

    from hmkd.models import build_model

    teacher_path = tmp_path / "teacher.pth"
    torch.save({"model": build_model("segformer_tiny", 3).state_dict()}, teacher_path)
    cfg = config_from_dict(tiny_config(
        teacher={"name": "segformer_tiny", "checkpoint": str(teacher_path)},
        loss={"terms": {"ce": {"weight": 1.0}, "aux_ce": {"weight": 0.4}, "kd": {"weight": 1.0},
                        "hfa": {"weight": 1.0}}},
        schedule={"max_iters": 1}))
    trainer = Trainer(cfg, str(tmp_path / "run"))
    head_calls = []
    trainer.teacher.decode_head.register_forward_hook(lambda *_: head_calls.append(1))
    values = trainer.train_step(trainer.batches())
    assert head_calls == [1] and values["kd"] > 0


def test_an_op_without_a_deterministic_kernel_is_one_line(tmp_path, monkeypatch):
    """On CUDA, train.deterministic meets ops torch has no deterministic kernel for; torch's RuntimeError (its
    text, as torch 2.x words it, raised here in place of the CUDA op) becomes a ValueError the CLI prints as one
    line; any other RuntimeError passes through unchanged."""
    from engine_config import tiny_config

    cfg = config_from_dict(tiny_config(schedule={"max_iters": 1}))
    trainer = Trainer(cfg, str(tmp_path / "run"))
    message = ("adaptive_avg_pool2d_backward_cuda does not have a deterministic implementation, but you set "
               "'torch.use_deterministic_algorithms(True)'. You can turn off determinism just for this operation, "
               "or you can use the 'warn_only=True' option, if that's acceptable for your application.")

    def raise_(error):
        def step(batches):
            raise error
        return step

    monkeypatch.setattr(trainer, "train_step", raise_(RuntimeError(message)))
    with pytest.raises(ValueError) as caught:
        trainer.deterministic_step(None)
    assert str(caught.value).startswith("train.deterministic: adaptive_avg_pool2d_backward_cuda does not have a "
                                        "deterministic implementation on cpu (torch ")
    assert "set train.deterministic=false" in str(caught.value) and "\n" not in str(caught.value)
    monkeypatch.setattr(trainer, "train_step", raise_(RuntimeError("out of memory")))
    with pytest.raises(RuntimeError, match="out of memory"):
        trainer.deterministic_step(None)
