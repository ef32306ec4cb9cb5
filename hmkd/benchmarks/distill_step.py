"""Distillation overhead: t(distillation step) / (t(student step) + t(teacher forward without grad)).

Usage: python -m hmkd.benchmarks.distill_step --size 128x256 --batch 2 [--teacher segformer_b4 --student deeplabv3_r18]

The floor is training the student plus running the teacher as an inference model would (decode head included); the
excess is what distillation adds. The distillation step runs the teacher as the trainer does: without its decode
head when no loss term reads the teacher's logits (HMKD's GLA and HFA read features only), so it can beat that
floor. ``ratio_same_teacher_work`` divides by the student step plus the teacher forward the step actually runs: the
alignment modules' own cost. All are timed in rotation in the same process.
Next to it, that ratio in arithmetic (``mac_ratio``): multiply-accumulates of one forward of the student, the
teacher and the loss terms, counted by torch.profiler (convolutions, linear layers, batched matmuls), with backward
taken as twice the forward for what trains. It is what the method itself demands at this shape, so a time ratio near
it means the implementation adds no waste of its own, and one far above it means it does.
"""
import argparse
from typing import Any, Callable, Dict

import torch
from torch.profiler import ProfilerActivity, profile

from hmkd.benchmarks.common import add_run_args, median_ratio, summarize, time_interleaved, write_result
from hmkd.cli.common import parse_size
from hmkd.compat import cuda_autocast, grad_scaler
from hmkd.losses import build_criterion
from hmkd.losses.criterion import TermContext
from hmkd.models import build_model


def forward_macs(fn: Callable[[], Any]) -> float:
    """Multiply-accumulates of the ops torch.profiler counts (it reports FLOPs = 2 x MACs) in one call of ``fn``."""
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        fn()
    return sum(event.flops for event in prof.key_averages() if event.flops) / 2.0


def measure(teacher_name: str, student_name: str, size, batch: int, device: str, amp: bool, reps: int,
            terms: Dict[str, Any]) -> Dict[str, Any]:
    dev = torch.device(device)
    num_classes = 19
    teacher = build_model(teacher_name, num_classes).to(dev).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    images = torch.randn(batch, 3, *size, device=dev)
    labels = torch.randint(0, num_classes, (batch,) + tuple(size), device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    autocast = (lambda _name: cuda_autocast()) if amp else torch.autograd.profiler.record_function

    def setup(term_cfg):
        student = build_model(student_name, num_classes).to(dev).train()
        criterion = build_criterion(term_cfg, TermContext(student, teacher, 255)).to(dev).train()
        params = list(student.parameters()) + list(criterion.parameters())
        opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
        scaler = grad_scaler(amp)
        return student, criterion, opt, scaler

    def step_fn(student, criterion, opt, scaler, with_teacher):
        teacher_logits = criterion.needs_teacher_logits  # as the trainer asks the teacher

        def step():
            opt.zero_grad(set_to_none=True)
            teacher_out = None
            if with_teacher:
                with torch.no_grad(), autocast("teacher"):
                    teacher_out = teacher(images, with_logits=teacher_logits)
            with autocast("student"):
                total = sum(criterion(student(images), labels, teacher_out).values())
            scaler.scale(total).backward()
            scaler.step(opt)
            scaler.update()
        return step

    def teacher_forward(with_logits):
        def forward():
            with torch.no_grad(), autocast("teacher"):
                teacher(images, with_logits=with_logits)
        return forward

    plain = setup({"ce": {"weight": 1.0}})
    distill = setup(dict({"ce": {"weight": 1.0}}, **terms))
    student, criterion = distill[0], distill[1]
    # Round-robin, so load from other jobs on a shared machine hits the step and its floors alike.
    times = time_interleaved({"student": step_fn(*plain, with_teacher=False), "teacher": teacher_forward(True),
                              "teacher_features": teacher_forward(False),
                              "distill": step_fn(*distill, with_teacher=True)}, reps=reps, sync=sync)
    stats = {name: summarize(values) for name, values in times.items()}
    floors = [s + t for s, t in zip(times["student"], times["teacher"])]
    used = "teacher" if criterion.needs_teacher_logits else "teacher_features"
    like = median_ratio(times["distill"], [s + t for s, t in zip(times["student"], times[used])])
    result: Dict[str, Any] = {
        "teacher": teacher_name, "student": student_name, "size": list(size), "batch": batch, "device": device,
        "amp": amp, "terms": sorted(terms), "student_step": stats["student"], "teacher_forward": stats["teacher"],
        "teacher_forward_features_only": stats["teacher_features"], "distill_step": stats["distill"],
        "teacher_logits_used": criterion.needs_teacher_logits,
        **median_ratio(times["distill"], floors), "target": 1.10,
        "ratio_same_teacher_work": like["ratio"], "ratio_same_teacher_work_spread": like["ratio_spread"],
        "images_per_s": batch / stats["distill"]["median_s"]}
    with torch.no_grad():
        teacher_out, student_out = teacher(images, with_logits=criterion.needs_teacher_logits), student(images)
    macs = {"student_forward": forward_macs(lambda: student(images)),
            "teacher_forward": forward_macs(lambda: teacher(images)),
            "teacher_forward_as_used": forward_macs(
                lambda: teacher(images, with_logits=criterion.needs_teacher_logits)),
            "terms_forward": forward_macs(lambda: criterion(student_out, labels, teacher_out))}
    floor_macs = 3 * macs["student_forward"] + macs["teacher_forward_as_used"]
    result["macs"] = macs
    result["mac_ratio"] = (floor_macs + 3 * macs["terms_forward"]) / floor_macs
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        step_fn(*distill, with_teacher=True)()
        sync()
        result["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return result


def main(argv=None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="segformer_b4")
    parser.add_argument("--student", default="deeplabv3_r18")
    parser.add_argument("--size", type=parse_size, default="128x256")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--amp", action="store_true")
    add_run_args(parser, reps=5, name="distill_step")
    args = parser.parse_args(argv)
    size = args.size
    result = measure(args.teacher, args.student, size, args.batch, args.device, args.amp, args.reps,
                     {"gla": {"weight": 1.0}, "hfa": {"weight": 1.0}})
    path = write_result(args.out, args.name, result)
    print("%s -> %s at %dx%d x%d on %s%s: student step %.3fs, teacher fwd %.3fs (features only %.3fs), distill step "
          "%.3fs, ratio %.3f (target <= 1.10); against the same teacher work %.3f, in arithmetic %.3f -> %s"
          % (args.teacher, args.student, size[0], size[1], args.batch, args.device, " amp" if args.amp else "",
             result["student_step"]["median_s"], result["teacher_forward"]["median_s"],
             result["teacher_forward_features_only"]["median_s"], result["distill_step"]["median_s"],
             result["ratio"], result["ratio_same_teacher_work"], result["mac_ratio"], path))
    return result


if __name__ == "__main__":
    main()
