"""The speed switches (train.amp, train.compile, train.channels_last, SegFormer attention, HFA context) against the
float32 eager path: the same distillation steps on the CPU, weights and loss terms compared at a stated tolerance.
On the legacy stack (torch 1.11) the torch 2 switches fall back with a warning and then equal eager bitwise."""
import logging
from typing import Dict, List, NamedTuple

import pytest
import torch
from torch import nn
from engine_config import tiny_config

from hmkd.compat import CPU_BF16_AUTOCAST, HAS_MODULE_COMPILE, HAS_SDPA
from hmkd.config import config_from_dict
from hmkd.engine.trainer import Trainer
from hmkd.models import build_model

STEPS = 3


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher") / "teacher.pth"
    torch.manual_seed(1)
    torch.save({"model": build_model("segformer_tiny", 3).state_dict()}, path)
    return str(path)


def run_steps(tmp_path, teacher_path, name, train=None, teacher=None, hfa=None):
    """STEPS distillation steps (DeepLabV3 student, SegFormer teacher, CE + aux CE + HFA): the trainer, each step's
    loss terms and the weights before and after each step. The student's dropout is off: its masks are drawn per
    element in memory order (so channels-last draws others) or by inductor's own generator (compile), and the
    comparison is of the arithmetic, not of random masks."""
    cfg = config_from_dict(tiny_config(
        teacher=dict({"name": "segformer_tiny", "checkpoint": teacher_path}, **(teacher or {})),
        loss={"terms": {"ce": {"weight": 1.0}, "aux_ce": {"weight": 0.4},
                        "hfa": dict({"weight": 1.0, "context_on": "both"}, **(hfa or {}))}},
        schedule={"max_iters": STEPS}, train=dict({"seed": 0}, **(train or {}))))
    trainer = Trainer(cfg, str(tmp_path / name))
    for module in trainer.module.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    weights = [_flat_weights(trainer)]
    batches = trainer.batches()
    values = []
    for _ in range(STEPS):
        values.append(trainer.train_step(batches))
        weights.append(_flat_weights(trainer))
    return Run(trainer, values, weights)


class Run(NamedTuple):
    trainer: Trainer
    values: List[Dict[str, float]]
    weights: List[torch.Tensor]  # every weight and statistic, flat: before the first step, then after each

    def update_error(self, reference: "Run", step: int) -> float:
        """|| update - reference update || / || reference update || after ``step`` steps, over all weights: per-tensor
        tolerances would judge BatchNorm biases, which start at 0 and move by sums that nearly cancel."""
        assert torch.equal(self.weights[0], reference.weights[0])
        expected = reference.weights[step] - reference.weights[0]
        return ((self.weights[step] - self.weights[0] - expected).norm() / expected.norm()).item()

    def loss_error(self, reference: "Run", step: int) -> float:
        """The largest relative difference of a loss term at ``step`` (1-based)."""
        ref = reference.values[step - 1]
        return max(abs(self.values[step - 1][name] - ref[name]) / abs(ref[name]) for name in ref)

    def errors(self, reference: "Run") -> List[float]:
        """Step 1's loss and update errors (the arithmetic, from the same weights), then step STEPS's update error:
        later steps start from weights that already differ, and the 1x1 image-pooling BatchNorm of ASPP over a
        batch of 2 magnifies that (float32 paths: about 1e-7 after one step, up to 3e-4 after three)."""
        return [self.loss_error(reference, 1), self.update_error(reference, 1), self.update_error(reference, STEPS)]


def _flat_weights(trainer: Trainer) -> torch.Tensor:
    return torch.cat([v.detach().flatten().double() for v in trainer.module.state_dict().values()
                      if v.is_floating_point()])


@pytest.fixture(scope="module")
def eager(tmp_path_factory, teacher_path):
    return run_steps(tmp_path_factory.mktemp("eager"), teacher_path, "run")


def test_channels_last_equals_eager(tmp_path, teacher_path, eager):
    """NHWC weights and images run other convolution kernels. Tolerances of the float32 paths (see Run.errors):
    step 1's loss terms to 1e-6 and weight update to 1e-5, the update after 3 steps to 1e-3."""
    run = run_steps(tmp_path, teacher_path, "nhwc", train={"channels_last": True})
    for model in (run.trainer.module, run.trainer.teacher):
        weight = next(p for p in model.parameters() if p.dim() == 4 and p.shape[2] > 1)
        assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    loss, update, later = run.errors(eager)
    assert loss < 1e-6 and update < 1e-5 and later < 1e-3, (loss, update, later)


@pytest.mark.skipif(not HAS_SDPA, reason="scaled_dot_product_attention needs torch 2 (fallbacks tested below)")
def test_sdpa_teacher_attention_and_hfa_context_equal_eager(tmp_path, teacher_path, eager):
    run = run_steps(tmp_path, teacher_path, "sdpa", teacher={"options": {"attention": "sdpa"}},
                    hfa={"context": "sdpa"})
    loss, update, later = run.errors(eager)
    assert loss < 1e-6 and update < 1e-5 and later < 1e-3, (loss, update, later)


@pytest.mark.skipif(not CPU_BF16_AUTOCAST, reason="bfloat16 CPU autocast needs torch 2 (the fallback is tested below)")
def test_bf16_autocast_follows_eager_to_bf16_precision(tmp_path, teacher_path, eager):
    """bf16 keeps 8 significant bits: step 1's loss terms within 1% of float32's and its update within 5%, the
    update after 3 steps within 20% (and neither equal to float32's); the student's convolutions really ran in
    bf16, no loss scaler is used, and the teacher's outputs reach the terms in float32."""
    run = run_steps(tmp_path, teacher_path, "bf16", train={"amp": "bf16"}, teacher={"amp": "bf16"})
    trainer = run.trainer
    assert trainer.precision.dtype == torch.bfloat16 and trainer.teacher_precision.dtype == torch.bfloat16
    assert not trainer.scaler.is_enabled()
    seen = {"student": [], "term": []}
    trainer.module.student.decode_head.register_forward_hook(lambda m, i, out: seen["student"].append(out.dtype))
    hfa = trainer.module.criterion.terms["hfa"]
    hfa.teacher_proj.register_forward_pre_hook(lambda m, inputs: seen["term"].append(inputs[0].dtype))
    trainer.train_step(trainer.batches())
    assert seen == {"student": [torch.bfloat16], "term": [torch.float32]}
    loss, update, later = run.errors(eager)
    assert 1e-5 < loss < 1e-2 and 1e-5 < update < 5e-2 and later < 0.2, (loss, update, later)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_MODULE_COMPILE, reason="nn.Module.compile needs torch >= 2.2 (fallback tested below)")
def test_compiled_student_equals_eager(tmp_path, teacher_path, eager):
    """Inductor's fused kernels reorder float32 sums (the float32 tolerances above); state-dict keys stay."""
    run = run_steps(tmp_path, teacher_path, "compiled", train={"compile": True})
    student = run.trainer.module.student
    assert student._compiled_call_impl is not None
    assert list(student.state_dict()) == list(eager.trainer.module.student.state_dict())
    loss, update, later = run.errors(eager)
    assert loss < 1e-6 and update < 1e-5 and later < 1e-3, (loss, update, later)


@pytest.mark.skipif(HAS_SDPA and CPU_BF16_AUTOCAST and HAS_MODULE_COMPILE, reason="this stack has every torch 2 path")
def test_torch_2_switches_fall_back_with_warnings_on_torch_1(tmp_path, teacher_path, eager, caplog):
    with caplog.at_level(logging.WARNING):
        run = run_steps(tmp_path, teacher_path, "legacy", train={"amp": "bf16", "compile": True},
                        teacher={"amp": "bf16", "options": {"attention": "sdpa"}}, hfa={"context": "sdpa"})
    for expected in ("train.amp=bf16 is ignored on the CPU", "teacher.amp=bf16 is ignored on the CPU",
                     "train.compile needs torch >= 2.2", "attention=sdpa needs torch 2",
                     "scaled_dot_product_attention needs torch 2"):
        assert expected in caplog.text
    assert run.values == eager.values and torch.equal(run.weights[-1], eager.weights[-1])


def test_fp16_is_ignored_on_the_cpu_with_a_warning(tmp_path, teacher_path, eager, caplog):
    with caplog.at_level(logging.WARNING):
        run = run_steps(tmp_path, teacher_path, "fp16", train={"amp": True})
    assert "train.amp=fp16 is ignored on the CPU" in caplog.text and run.trainer.precision.dtype is None
    assert run.values == eager.values and torch.equal(run.weights[-1], eager.weights[-1])
