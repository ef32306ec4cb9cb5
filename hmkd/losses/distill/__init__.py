"""Distillation terms; importing this package registers them with the criterion.

Usage (config):
    loss:
      terms:
        ce:  {weight: 1.0}
        gla: {weight: 1.0}        # HMKD alignment 1 (patch relations, stage 1)
        hfa: {weight: 1.0}        # HMKD alignment 2 (learned warping, stage 3)
        # baselines: kd {temperature}, cwd {temperature}, fitnet {stage, bn}

Reproducing the authors' code instead of the project's defaults takes three switches:
``gla.reduction: sum`` (their loss scale), ``hfa.align_corners: false`` (their grid_sample setting) and, on a
SegFormer teacher, the model option ``stage3_features: attn_mean`` (stage-3 features taken as the mean of the
blocks' attention outputs rather than the stage output; a model option, nothing to set here).

Every term reads the teacher's outputs detached, so no gradient reaches the teacher even if it was run with
autograd on; the alignment modules are trained with the student and sized from ``feature_info``, never probed.
"""
from hmkd.losses.distill import fitnet, gla, hfa, logits  # noqa: F401  (registers the terms)
from hmkd.losses.distill.global_context import (context_function, global_context, global_context_direct,
                                                global_context_sdpa)

__all__ = ["context_function", "global_context", "global_context_direct", "global_context_sdpa"]
