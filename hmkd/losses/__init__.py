"""Loss terms composed from the config into one criterion; learnable terms train with the student.

Usage:
    criterion = build_criterion(cfg.loss.terms, TermContext(student, teacher, dataset.ignore_index))
    terms = criterion(student_out, labels, teacher_out)   # {"ce": weighted tensor, ...}; total = sum(terms.values())
"""
from hmkd.losses.criterion import Criterion, build_criterion, list_terms, register_term
from hmkd.losses import distill, segmentation  # noqa: E402,F401  (importing the term modules registers them)

__all__ = ["Criterion", "build_criterion", "list_terms", "register_term"]
