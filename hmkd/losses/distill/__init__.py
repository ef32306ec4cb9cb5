"""Distillation terms; importing this package registers them with the criterion.

Usage (config):
    loss:
      terms:
        ce:  {weight: 1.0}
        gla: {weight: 1.0}        # HMKD alignment 1 (patch relations, stage 1)
        hfa: {weight: 1.0}        # HMKD alignment 2 (learned warping, stage 3)
        # baselines: kd {temperature}, cwd {temperature}, fitnet {stage, bn}

The HMKD authors' arithmetic is one switch per term, ``variant: authors`` on gla and hfa (their taps, widths,
edges, reduction, resize, context position, biases and grid_sample setting; each item also has its own option,
docs/hmkd-authors.md); the default ``variant: project`` is this project's. A term declares the maps it reads as
``taps`` ({"student": Tap, "teacher": Tap}); the criterion gathers them so the trainer asks each model for them.

Every term reads the teacher's outputs detached, so no gradient reaches the teacher even if it was run with
autograd on; the alignment modules are trained with the student and sized from ``feature_info``, never probed.
"""
from hmkd.losses.distill import fitnet, gla, hfa, logits  # noqa: F401  (registers the terms)
from hmkd.losses.distill.global_context import (context_function, global_context, global_context_direct,
                                                global_context_sdpa)

__all__ = ["context_function", "global_context", "global_context_direct", "global_context_sdpa"]
