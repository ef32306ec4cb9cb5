"""Loss terms composed from the config into one criterion; learnable terms train with the student.

Usage:
    criterion = build_criterion(cfg.loss, student=model, teacher=None)
    terms = criterion(student_out, labels, teacher_out)   # {"ce": weighted tensor, ...}; total = sum(terms.values())
"""
from hmkd.losses.criterion import Criterion, build_criterion, list_terms, register_term

__all__ = ["Criterion", "build_criterion", "list_terms", "register_term"]
