"""Distillation overhead: t(distillation step) / (t(student step) + t(teacher forward without grad)).

Usage: python -m hmkd.benchmarks.distill_step --size 128x256 --batch 2 [--teacher segformer_b4 --student deeplabv3_r18]
                                               [--amp fp16|bf16]   (bare --amp: fp16)
                                               [--attention sdpa --context sdpa --channels-last]   (speed paths)

The floor is training the student plus running the teacher as an inference model would (decode head included); the
excess is what distillation adds. The distillation step runs the teacher as the trainer does: without its decode
head when no loss term reads the teacher's logits (HMKD's GLA and HFA read features only), so it can beat that
floor. ``ratio_same_teacher_work`` divides by the student step plus the teacher forward the step actually runs: the
alignment modules' own cost. All are timed in rotation in the same process.
Next to it, that ratio in arithmetic (``mac_ratio``): multiply-accumulates of one forward of the student, the
teacher and the loss terms, counted by torch.profiler (convolutions, linear layers, batched matmuls), with backward
taken as twice the forward for what trains. It is what the method itself demands at this shape, so a time ratio near
it means the implementation adds no waste of its own, and one far above it means it does.
``--amp`` runs the student step, the teacher and the floors under autocast in that dtype as the trainer resolves
``train.amp`` (hmkd.engine.precision): fp16 with a GradScaler, bf16 without one; on the CPU fp16 is not offered and
bf16 needs torch 2, and what ran instead is said (``precision`` in the JSON, fp32 then).
The speed paths are the config's switches: ``--attention`` is the SegFormer models' ``attention`` option (eager or
sdpa), ``--context`` HFA's ``context`` (chunked, sdpa or direct), ``--channels-last`` the models, criterion and images
in NHWC (``train.channels_last``). Floors and step run with the same switches.
"""
import argparse
import dataclasses
from typing import Any, Callable, Dict, Optional

import torch
from torch.profiler import ProfilerActivity, profile

from hmkd.benchmarks.common import add_run_args, median_ratio, summarize, time_interleaved, write_result
from hmkd.cli.common import parse_size
from hmkd.compat import grad_scaler
from hmkd.config.schema import TrainConfig
from hmkd.engine.grad_share import term_gradient_norms
from hmkd.engine.precision import AMP_DTYPES, resolve_precision
from hmkd.losses import build_criterion
from hmkd.losses.criterion import TermContext
from hmkd.models import build_model, model_entry


def forward_macs(fn: Callable[[], Any]) -> float:
    """Multiply-accumulates of the ops torch.profiler counts (it reports FLOPs = 2 x MACs) in one call of ``fn``."""
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        fn()
    return sum(event.flops for event in prof.key_averages() if event.flops) / 2.0


def model_options(name: str, attention: Optional[str]) -> Dict[str, Any]:
    """``attention`` for the models that have the option (SegFormer), nothing for the others."""
    fields = {f.name for f in dataclasses.fields(model_entry(name).options)}
    return {"attention": attention} if attention and "attention" in fields else {}


def hmkd_terms(context: Optional[str] = None) -> Dict[str, Any]:
    """The distillation terms of the headline recipe beside CE: GLA and HFA at weight 1 with the authors' arithmetic
    (their attention taps included; HFA's context as named)."""
    hfa: Dict[str, Any] = {"weight": 1.0, "variant": "authors"}
    if context:
        hfa["context"] = context
    return {"gla": {"weight": 1.0, "variant": "authors"}, "hfa": hfa}


class DistillSetup:
    """The headline step's pieces, built once: a frozen teacher, random images and labels, and per loss-term set a
    student, its criterion, an SGD optimizer and a scaler. ``step(...)`` and ``teacher_forward(...)`` return the
    callables that are timed (here, and by :mod:`hmkd.benchmarks.stack_ratio` in each stack's process)."""

    def __init__(self, teacher_name: str, student_name: str, size, batch: int, device: str, amp: Optional[str],
                 attention: Optional[str] = None, channels_last: bool = False, num_classes: int = 19):
        self.device = dev = torch.device(device)
        self.student_name, self.attention, self.num_classes = student_name, attention, num_classes
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format
        teacher = build_model(teacher_name, num_classes, **model_options(teacher_name, attention))
        self.teacher = teacher.to(dev, memory_format=self.fmt).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.images = torch.randn(batch, 3, *size, device=dev).contiguous(memory_format=self.fmt)
        self.labels = torch.randint(0, num_classes, (batch,) + tuple(size), device=dev)
        self.sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        self.precision = resolve_precision(amp, dev, "--amp", warn=lambda message: print("warning: " + message))

    def autocast(self):
        return self.precision.autocast()

    def setup(self, term_cfg: Dict[str, Any]):
        dev, fmt = self.device, self.fmt
        student = build_model(self.student_name, self.num_classes, **model_options(self.student_name, self.attention))
        student = student.to(dev, memory_format=fmt).train()
        criterion = build_criterion(term_cfg, TermContext(student, self.teacher, 255)).to(dev, memory_format=fmt)
        params = list(student.parameters()) + list(criterion.parameters())
        opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
        scaler = grad_scaler(self.precision.needs_scaler)  # fp16 only: bf16 has float32's exponent range
        return student, criterion.train(), opt, scaler

    def step(self, student, criterion, opt, scaler, with_teacher: bool, grad_share: bool = False
             ) -> Callable[[], None]:
        """One training step as the trainer runs it; ``grad_share``: a diagnostic step, which also measures each
        term's gradient norm on the student's parameters (hmkd.engine.grad_share) before the backward."""
        teacher_logits = criterion.needs_teacher_logits  # as the trainer asks the teacher
        teacher_taps, student_taps = criterion.taps("teacher"), criterion.taps("student")
        teacher, images, labels = self.teacher, self.images, self.labels
        params = [p for p in student.parameters() if p.requires_grad]

        def step():
            opt.zero_grad(set_to_none=True)
            teacher_out = None
            if with_teacher:
                with torch.no_grad(), self.autocast():
                    teacher_out = teacher(images, with_logits=teacher_logits, taps=teacher_taps)
            with self.autocast():
                terms = criterion(student(images, taps=student_taps), labels, teacher_out)
            if grad_share:
                term_gradient_norms(terms, params, scaler.get_scale() if scaler.is_enabled() else 1.0)
            total = sum(terms.values())
            scaler.scale(total).backward()
            scaler.step(opt)
            scaler.update()
        return step

    def teacher_forward(self, with_logits: bool) -> Callable[[], None]:
        def forward():
            with torch.no_grad(), self.autocast():
                self.teacher(self.images, with_logits=with_logits)
        return forward


def measure(teacher_name: str, student_name: str, size, batch: int, device: str, amp: Optional[str], reps: int,
            terms: Dict[str, Any], attention: Optional[str] = None, channels_last: bool = False) -> Dict[str, Any]:
    bench = DistillSetup(teacher_name, student_name, size, batch, device, amp, attention, channels_last)
    teacher, images, labels, sync, precision = bench.teacher, bench.images, bench.labels, bench.sync, bench.precision
    dev = bench.device
    setup, step_fn, teacher_forward = bench.setup, bench.step, bench.teacher_forward

    plain = setup({"ce": {"weight": 1.0}})
    distill = setup(dict({"ce": {"weight": 1.0}}, **terms))
    student, criterion = distill[0], distill[1]
    # Round-robin, so load from other jobs on a shared machine hits the step and its floors alike.
    times = time_interleaved({"student": step_fn(*plain, with_teacher=False), "teacher": teacher_forward(True),
                              "teacher_features": teacher_forward(False),
                              "distill": step_fn(*distill, with_teacher=True),
                              "grad_share_step": step_fn(*distill, with_teacher=True, grad_share=True)},
                             reps=reps, sync=sync)
    stats = {name: summarize(values) for name, values in times.items()}
    floors = [s + t for s, t in zip(times["student"], times["teacher"])]
    used = "teacher" if criterion.needs_teacher_logits else "teacher_features"
    like = median_ratio(times["distill"], [s + t for s, t in zip(times["student"], times[used])])
    result: Dict[str, Any] = {
        "teacher": teacher_name, "student": student_name, "size": list(size), "batch": batch, "device": device,
        "amp": amp or False, "precision": precision.name, "terms": sorted(terms), "term_options": terms,
        "attention": attention or "eager", "channels_last": channels_last, "student_step": stats["student"],
        "teacher_forward": stats["teacher"],
        "teacher_forward_features_only": stats["teacher_features"], "distill_step": stats["distill"],
        "teacher_logits_used": criterion.needs_teacher_logits,
        **median_ratio(times["distill"], floors), "target": 1.10,
        "ratio_same_teacher_work": like["ratio"], "ratio_same_teacher_work_spread": like["ratio_spread"],
        "images_per_s": batch / stats["distill"]["median_s"]}
    # The gradient-share diagnostic runs on step 1 and every train.grad_share_interval steps: its cost per step is
    # the diagnostic step's excess over a plain one, spread over the interval.
    interval = TrainConfig.grad_share_interval
    excess = median_ratio(times["grad_share_step"], times["distill"])
    amortized = [(d * (interval - 1) + g) / interval / f
                 for d, g, f in zip(times["distill"], times["grad_share_step"], floors)]
    result["grad_share"] = {"interval": interval, "step": stats["grad_share_step"],
                            "diagnostic_step_over_plain": excess["ratio"], "spread": excess["ratio_spread"],
                            "ratio_with_diagnostic": sorted(amortized)[len(amortized) // 2],
                            "ratio_move": sorted(amortized)[len(amortized) // 2] - result["ratio"]}
    with torch.no_grad():
        teacher_out = teacher(images, with_logits=criterion.needs_teacher_logits, taps=criterion.taps("teacher"))
        student_out = student(images, taps=criterion.taps("student"))
    macs = {"student_forward": forward_macs(lambda: student(images)),
            "teacher_forward": forward_macs(lambda: teacher(images)),
            "teacher_forward_as_used": forward_macs(
                lambda: teacher(images, with_logits=criterion.needs_teacher_logits, taps=criterion.taps("teacher"))),
            "terms_forward": forward_macs(lambda: criterion(student_out, labels, teacher_out))}
    floor_macs = 3 * macs["student_forward"] + macs["teacher_forward_as_used"]
    result["macs"] = macs
    result["mac_ratio"] = (floor_macs + 3 * macs["terms_forward"]) / floor_macs
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        step_fn(*distill, with_teacher=True)()
        sync()
        result["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
        torch.cuda.reset_peak_memory_stats()
        step_fn(*plain, with_teacher=False)()
        teacher_forward(True)()
        sync()
        result["floor_peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return result


def main(argv=None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="segformer_b4")
    parser.add_argument("--student", default="deeplabv3_r18")
    parser.add_argument("--size", type=parse_size, default="128x256")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--amp", nargs="?", const="fp16", choices=sorted(AMP_DTYPES), default=None,
                        help="autocast dtype (bare --amp: fp16)")
    parser.add_argument("--attention", choices=("eager", "sdpa"), default=None,
                        help="SegFormer's attention option (default: the model's, eager)")
    parser.add_argument("--context", choices=("chunked", "sdpa", "direct"), default=None,
                        help="HFA's global context implementation (default: the term's, chunked)")
    parser.add_argument("--channels-last", action="store_true")
    add_run_args(parser, reps=5, name="distill_step")
    args = parser.parse_args(argv)
    size = args.size
    result = measure(args.teacher, args.student, size, args.batch, args.device, args.amp, args.reps,
                     hmkd_terms(args.context), args.attention, args.channels_last)
    path = write_result(args.out, args.name, result)
    switches = "".join(" " + s for s in (args.amp, args.attention and "attention=" + args.attention,
                                         args.context and "context=" + args.context,
                                         args.channels_last and "channels-last") if s)
    print("%s -> %s at %dx%d x%d on %s%s: student step %.3fs, teacher fwd %.3fs (features only %.3fs), distill step "
          "%.3fs, ratio %.3f (target <= 1.10); against the same teacher work %.3f, in arithmetic %.3f; with the "
          "gradient-share diagnostic every %d steps %.4f (its step %.2fx a plain one) -> %s"
          % (args.teacher, args.student, size[0], size[1], args.batch, args.device, switches,
             result["student_step"]["median_s"], result["teacher_forward"]["median_s"],
             result["teacher_forward_features_only"]["median_s"], result["distill_step"]["median_s"],
             result["ratio"], result["ratio_same_teacher_work"], result["mac_ratio"], result["grad_share"]["interval"],
             result["grad_share"]["ratio_with_diagnostic"], result["grad_share"]["diagnostic_step_over_plain"], path))
    return result


if __name__ == "__main__":
    main()
