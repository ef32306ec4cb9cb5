"""Distillation overhead: t(distillation step) / (t(student step) + t(teacher forward without grad)).

Usage: python -m hmkd.benchmarks.distill_step --size 128x256 --batch 2 [--teacher segformer_b4 --student deeplabv3_r18]

Floor 1.0: a distillation step cannot cost less than training the student and running the teacher. The excess is
what the alignment modules (GLA, HFA with its global context) add. All three are measured in the same process.
Next to it, the same ratio in arithmetic (``mac_ratio``): multiply-accumulates of one forward of the student, the
teacher and the loss terms, counted by torch.profiler (convolutions, linear layers, batched matmuls), with backward
taken as twice the forward for what trains. It is what the method itself demands at this shape, so a time ratio near
it means the implementation adds no waste of its own, and one far above it means it does.
"""
import argparse
from typing import Any, Callable, Dict

import torch
from torch.profiler import ProfilerActivity, profile

from hmkd.benchmarks.common import median_ratio, summarize, time_interleaved, write_result
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
    autocast = (lambda _name: torch.cuda.amp.autocast()) if amp else torch.autograd.profiler.record_function

    def setup(term_cfg):
        student = build_model(student_name, num_classes).to(dev).train()
        criterion = build_criterion(term_cfg, TermContext(student, teacher, 255)).to(dev).train()
        params = list(student.parameters()) + list(criterion.parameters())
        opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
        scaler = torch.cuda.amp.GradScaler(enabled=amp)
        return student, criterion, opt, scaler

    def step_fn(student, criterion, opt, scaler, with_teacher):
        def step():
            opt.zero_grad(set_to_none=True)
            teacher_out = None
            if with_teacher:
                with torch.no_grad(), autocast("teacher"):
                    teacher_out = teacher(images)
            with autocast("student"):
                total = sum(criterion(student(images), labels, teacher_out).values())
            scaler.scale(total).backward()
            scaler.step(opt)
            scaler.update()
        return step

    def teacher_forward():
        with torch.no_grad(), autocast("teacher"):
            teacher(images)

    plain = setup({"ce": {"weight": 1.0}})
    distill = setup(dict({"ce": {"weight": 1.0}}, **terms))
    # Round-robin, so load from other jobs on a shared machine hits the step and its floor alike.
    times = time_interleaved({"student": step_fn(*plain, with_teacher=False), "teacher": teacher_forward,
                              "distill": step_fn(*distill, with_teacher=True)}, reps=reps, sync=sync)
    student_t, teacher_t, distill_t = (summarize(times[k]) for k in ("student", "teacher", "distill"))
    floors = [s + t for s, t in zip(times["student"], times["teacher"])]
    result: Dict[str, Any] = {
        "teacher": teacher_name, "student": student_name, "size": list(size), "batch": batch, "device": device,
        "amp": amp, "terms": sorted(terms), "student_step": student_t, "teacher_forward": teacher_t,
        "distill_step": distill_t, **median_ratio(times["distill"], floors), "target": 1.10,
        "images_per_s": batch / distill_t["median_s"]}
    student, criterion = distill[0], distill[1]
    with torch.no_grad():
        teacher_out, student_out = teacher(images), student(images)
    macs = {"student_forward": forward_macs(lambda: student(images)), "teacher_forward": forward_macs(
        lambda: teacher(images)), "terms_forward": forward_macs(lambda: criterion(student_out, labels, teacher_out))}
    floor_macs = 3 * macs["student_forward"] + macs["teacher_forward"]
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
    parser.add_argument("--size", default="128x256")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", default="results")
    parser.add_argument("--name", default="distill_step")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    result = measure(args.teacher, args.student, size, args.batch, args.device, args.amp, args.reps,
                     {"gla": {"weight": 1.0}, "hfa": {"weight": 1.0}})
    path = write_result(args.out, args.name, result)
    print("%s -> %s at %s x%d on %s%s: student step %.3fs, teacher fwd %.3fs, distill step %.3fs, ratio %.3f "
          "(target <= 1.10; arithmetic %.3f) -> %s" % (args.teacher, args.student, args.size, args.batch, args.device,
                                      " amp" if args.amp else "", result["student_step"]["median_s"],
                                      result["teacher_forward"]["median_s"], result["distill_step"]["median_s"],
                                      result["ratio"], result["mac_ratio"], path))
    return result


if __name__ == "__main__":
    main()
