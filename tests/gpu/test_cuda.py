"""CUDA checks with the real components: every zoo model trains in fp32, bf16 and fp16; a distillation step with a
half-precision teacher; deterministic resume, bitwise; SyncBN under NCCL at world size 1; sliding evaluation at
1024x2048. Part of the GPU check (tools/gpu_check.py, `make gpu-check`).

Usage: pytest -m cuda tests/gpu                        (on a GPU; skipped where torch sees none)
       HMKD_GPU_TESTS_ON_CPU=1 pytest -m cuda tests/gpu  (the same code paths on the CPU at tiny sizes: the GPU
                                                         check's dry run, so that the one GPU run is not spent on
                                                         a wiring mistake)

On the CPU the half precisions run where the stack's CPU autocast has them (torch 2); SyncBN's step needs CUDA.
"""
import copy
import functools
import json
import os
import socket
import subprocess
import sys
from contextlib import nullcontext
from typing import List, NamedTuple, Optional, Tuple

import pytest
import torch
import yaml
from torch import nn

from engine.test_resume import assert_bitwise_equal, distill_sections
from engine_config import tiny_config
from hmkd.config import config_from_dict
from hmkd.data import build_dataset
from hmkd.evaluation import evaluate, predict_logits
from hmkd.losses import build_criterion
from hmkd.losses.criterion import TermContext
from hmkd.models import build_model, list_models
from runner import REPO, cli_env, final_state, run_cli

ON_CPU_ENV = "HMKD_GPU_TESTS_ON_CPU"
NUM_CLASSES = 19
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
TORCH_MAJOR = int(torch.__version__.split(".")[0])


class Profile(NamedTuple):
    """Sizes per device: the GPU runs the real zoo and Cityscapes' resolution, the CPU dry run tiny stand-ins."""

    device: torch.device
    zoo: List[str]
    zoo_size: Tuple[int, int]                # (h, w) of the zoo checks: non-square, divisible by 32
    eval_models: List[str]
    eval_size: Tuple[int, int]               # sliding evaluation: image, window, stride
    eval_crop: Tuple[int, int]
    eval_stride: Tuple[int, int]


def _profile() -> Optional[Profile]:
    if torch.cuda.is_available():
        return Profile(torch.device("cuda", 0), list_models(), (128, 192), ["deeplabv3_r18", "segformer_b0"],
                       (1024, 2048), (512, 1024), (341, 682))
    if os.environ.get(ON_CPU_ENV) == "1":
        tiny = [name for name in list_models() if name.endswith("_tiny")]
        return Profile(torch.device("cpu"), tiny, (64, 96), tiny, (64, 128), (32, 64), (24, 48))
    return None


PROFILE = _profile()
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(PROFILE is None, reason="no CUDA device (%s=1 runs these on the CPU)" % ON_CPU_ENV)]
ZOO = PROFILE.zoo if PROFILE else ["segformer_tiny"]


@pytest.fixture()
def device():
    if PROFILE.device.type == "cuda":
        torch.cuda.empty_cache()
    return PROFILE.device


def autocast_for(device: torch.device, precision: str):
    """Autocast to ``precision`` on ``device``; skips on a CPU whose autocast cannot (torch 1.11: no fp16, and bf16
    without LayerNorm / dilated convolutions). On CUDA nothing is skipped."""
    dtype = PRECISIONS[precision]
    if dtype is None:
        return nullcontext()
    if device.type == "cpu" and TORCH_MAJOR < 2:
        pytest.skip("torch %s's CPU autocast cannot run these models in %s" % (torch.__version__, precision))
    return torch.autocast(device.type, dtype=dtype)


def device_config(device: torch.device, **sections):
    """The engine tests' tiny experiment on ``device``; GPU runs keep its shapes (what is checked is the device)."""
    cfg = tiny_config(**sections)
    cfg["train"]["device"] = device.type
    return cfg


def write_yaml(path, cfg) -> str:
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


# ---------------------------------------------------------------------------------------------------- the zoo
@functools.lru_cache(maxsize=1)
def _built(name: str) -> nn.Module:
    """One CPU build per model (SegFormer-B5's initialisation takes seconds); each precision trains a copy."""
    torch.manual_seed(0)
    return build_model(name, NUM_CLASSES)


@pytest.mark.parametrize("precision", list(PRECISIONS))
@pytest.mark.parametrize("name", ZOO)
def test_every_zoo_model_trains_in_each_precision(name, precision, device):
    """Forward + CE + backward under autocast: declared shapes, finite logits in the autocast dtype, a finite
    gradient for every parameter (no GradScaler: at these losses fp16 gradients do not underflow to inf/NaN)."""
    model = copy.deepcopy(_built(name)).to(device).train()
    criterion = build_criterion({"ce": {"weight": 1.0}}, TermContext(model, None, 255)).to(device)
    h, w = PROFILE.zoo_size
    images = torch.randn(2, 3, h, w, device=device)
    labels = torch.randint(0, NUM_CLASSES, (2, h, w), device=device)
    with autocast_for(device, precision):
        out = model(images)
        terms = criterion(out, labels, None)
    total = sum(terms.values())
    total.backward()
    red = model.logits_reduction
    assert out.logits.shape == (2, NUM_CLASSES, h // red, w // red)
    assert out.logits.dtype == (PRECISIONS[precision] or torch.float32)
    assert torch.isfinite(out.logits.float()).all() and torch.isfinite(total)
    for feat, info in zip(out.features, model.feature_info):
        assert feat.shape[1:] == (info.channels, h // info.reduction, w // info.reduction)
    bad = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or
                                                                          not torch.isfinite(p.grad).all())]
    assert not bad, "no or non-finite gradient: %s" % bad[:5]


# --------------------------------------------------------------------------------- distillation, half teacher
@pytest.mark.parametrize("teacher_amp,student_amp", [("fp16", False), ("bf16", False), ("fp16", "fp16"),
                                                     ("bf16", "bf16")])
def test_distillation_step_with_a_half_precision_teacher(tmp_path, device, teacher_amp, student_amp):
    """Two steps of the real trainer (GLA + HFA, segformer_tiny -> deeplabv3_tiny) with teacher.amp / train.amp:
    the teacher's layers run in its dtype (on the CPU: bf16 with torch 2, fp16 never, as hmkd.engine.precision
    resolves it), every term stays finite and the student and alignment modules move."""
    from hmkd.engine.trainer import Trainer

    sections = distill_sections(tmp_path)
    sections["teacher"]["amp"] = teacher_amp
    cfg = config_from_dict(device_config(device, train={"amp": student_amp}, **sections))
    trainer = Trainer(cfg, str(tmp_path / "run"))
    try:
        seen = []  # a convolution's output: the stage outputs come from LayerNorm, which CUDA autocast keeps fp32
        first_conv = next(m for m in trainer.teacher.modules() if isinstance(m, nn.Conv2d))
        first_conv.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
        before = {k: v.detach().clone() for k, v in trainer.module.state_dict().items() if v.is_floating_point()}
        batches = trainer.batches()
        values = [trainer.train_step(batches) for _ in range(2)]
        assert set(values[0]) == {"ce", "aux_ce", "gla", "hfa"}
        assert all(torch.isfinite(torch.tensor(list(v.values()))).all() for v in values), values
        after = trainer.module.state_dict()
        for prefix in ("student.", "criterion.terms.gla.", "criterion.terms.hfa."):
            moved = [k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])]
            assert moved, "nothing under %s was trained" % prefix
        if device.type == "cuda":
            expected = PRECISIONS[teacher_amp]
        else:
            expected = torch.bfloat16 if teacher_amp == "bf16" and TORCH_MAJOR >= 2 else torch.float32
        assert seen == [expected] * 2
    finally:
        trainer.preemption.restore()


# ------------------------------------------------------------------------------------- deterministic resume
def test_the_distillation_step_has_deterministic_kernels(tmp_path, device, monkeypatch):
    """train.deterministic stops at the first op without a deterministic CUDA kernel; here one step of the resume
    check's distillation (CE + aux CE + GLA + HFA) runs with warn_only, so one GPU run names all such ops at once."""
    import warnings

    from hmkd.engine.trainer import Trainer

    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # as the trainer sets it in deterministic mode
    trainer = Trainer(config_from_dict(device_config(device, **distill_sections(tmp_path))), str(tmp_path / "run"))
    try:
        torch.use_deterministic_algorithms(True, warn_only=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.train_step(trainer.batches())
    finally:
        torch.use_deterministic_algorithms(False)
        trainer.preemption.restore()
    ops = sorted({str(w.message).split(" does not have a deterministic")[0].strip() for w in caught
                  if "deterministic" in str(w.message)})
    assert not ops, "no deterministic %s kernel for: %s" % (device.type, "; ".join(ops))


_PARTIAL_RUN = """
import sys
from hmkd.config import load_config
from hmkd.engine.trainer import Trainer
trainer = Trainer(load_config(sys.argv[1]), sys.argv[2])
batches = trainer.batches()
for _ in range(int(sys.argv[3])):
    trainer.train_step(batches)
trainer.save()
print("saved step %d" % trainer.step)
"""


def test_deterministic_resume_is_bitwise_on_the_device(tmp_path, device):
    """train.deterministic: 8 steps straight against 3 steps in one process, saved, then resumed by `hmkd distill`
    for the other 5; every weight (student, alignment modules) and optimizer state is equal bitwise."""
    cfg = device_config(device, train={"deterministic": True}, schedule={"max_iters": 8}, **distill_sections(tmp_path))
    config = write_yaml(tmp_path / "exp.yaml", cfg)
    reference, resumed = str(tmp_path / "reference"), str(tmp_path / "resumed")
    partial = subprocess.Popen([sys.executable, "-c", _PARTIAL_RUN, config, resumed, "3"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=REPO)  # beside the reference
    result = run_cli("distill", config, "--run-dir", reference)
    out, err = partial.communicate(timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert partial.returncode == 0 and "saved step 3" in out, err[-3000:]
    result = run_cli("distill", config, "--run-dir", resumed)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from step 3" in result.stdout
    reference_state, resumed_state = final_state(reference), final_state(resumed)
    assert reference_state["step"] == 8
    assert_bitwise_equal(reference_state, resumed_state)
    assert any(k.startswith("criterion.terms.hfa.") for k in reference_state["model"])


# --------------------------------------------------------------------------------------------- SyncBN, NCCL
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_syncbn_under_nccl_at_world_size_one(device):
    """A one-process NCCL group: the trainable module converted to SyncBatchNorm, wrapped in DDP, one SGD step
    (tests/gpu/nccl_worker.py, in its own process so that a hung group cannot take the session with it)."""
    worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nccl_worker.py")
    result = subprocess.run([sys.executable, worker, device.type, str(_free_port())], capture_output=True, text=True,
                            timeout=300, env=cli_env(), cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == ("nccl" if device.type == "cuda" else "gloo")
    assert report["all_reduce"] == 2.0 and report["sync_batchnorms"] > 0
    if device.type == "cuda":
        assert report["stepped"] and all(map(torch.isfinite, map(torch.tensor, report["losses"])))
        assert report["weights_changed"]


# ----------------------------------------------------------------------------------- sliding evaluation
def _val_set(size):
    return build_dataset({"name": "synthetic", "num_classes": NUM_CLASSES, "image_size": list(size), "num_val": 2},
                         split="val", train=False, validate="none")


@pytest.mark.parametrize("name", PROFILE.eval_models if PROFILE else ["deeplabv3_tiny"])
def test_sliding_evaluation_at_full_resolution(name, device):
    """hmkd.evaluation.evaluate in slide mode (Cityscapes' 512x1024 windows, stride 341x682, at 1024x2048 on the
    GPU): every labelled pixel counted once, finite scores."""
    from hmkd.config.schema import EvalConfig

    torch.manual_seed(0)
    model = build_model(name, NUM_CLASSES).to(device).eval()
    dataset = _val_set(PROFILE.eval_size)
    protocol = EvalConfig(mode="slide", crop_size=list(PROFILE.eval_crop), stride=list(PROFILE.eval_stride),
                          batch_windows=4)
    metrics = evaluate(model, dataset, protocol, device)
    labelled = sum(int((dataset[i]["label"] != dataset.ignore_index).sum()) for i in range(len(dataset)))
    assert sum(metrics["area_label"]) == labelled
    assert 0.0 <= metrics["aAcc"] <= 1.0 and 0.0 <= metrics["mIoU"] <= 1.0


def test_sliding_logits_on_the_device_match_the_cpu(device):
    """The same windows and weights on the device and on the CPU give the same logits (TF32 convolutions on
    Ampere and later: within 1% of the logits' range) and the same prediction almost everywhere."""
    torch.manual_seed(0)
    model = build_model("deeplabv3_tiny", NUM_CLASSES).eval()
    images = torch.randn(1, 3, *PROFILE.eval_size)
    options = dict(mode="slide", crop_size=PROFILE.eval_crop, stride=PROFILE.eval_stride, batch_windows=4)
    reference = predict_logits(model, images, **options)
    on_device = predict_logits(model.to(device), images.to(device), **options).cpu()
    assert on_device.shape == reference.shape == (1, NUM_CLASSES) + tuple(PROFILE.eval_size)
    scale = float(reference.abs().max())
    assert float((on_device - reference).abs().max()) <= 1e-2 * scale
    assert float((on_device.argmax(1) == reference.argmax(1)).float().mean()) >= 0.98  # near-ties may flip
