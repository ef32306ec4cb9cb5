"""The criterion: named, weighted loss terms chosen by the config, as one module saved with the student.

A term is an ``nn.Module`` class registered under a name; it is built with ``build(options, context)`` from its
config options and receives ``(student_out, labels, teacher_out)``. A term that reads the teacher sets
``needs_teacher = True``, and ``needs_teacher_logits = False`` when it reads only the teacher's features, so that
the teacher's decode head is skipped when no term needs it. Terms with parameters (alignment modules)
are trained in the student's optimizer and saved in checkpoints because the criterion is part of the trainable
module; they are dropped from exported student weights.
"""
import difflib
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from torch import Tensor, nn

from hmkd.models.output import SegOutput

_TERMS: Dict[str, Callable] = {}


class TermContext(NamedTuple):
    """What a term may need to size itself: declared features of both models (never a dummy forward)."""

    student: nn.Module
    teacher: Optional[nn.Module]
    ignore_index: int


def register_term(name: str):
    def wrap(cls):
        if name in _TERMS:
            raise ValueError("loss term %r registered twice" % name)
        _TERMS[name] = cls
        return cls
    return wrap


def list_terms() -> List[str]:
    return sorted(_TERMS)


class Criterion(nn.Module):
    def __init__(self, terms: Dict[str, nn.Module], weights: Dict[str, float]):
        super().__init__()
        self.terms = nn.ModuleDict(terms)
        self.weights = dict(weights)

    @property
    def needs_teacher(self) -> bool:
        return any(getattr(term, "needs_teacher", False) for term in self.terms.values())

    @property
    def needs_teacher_logits(self) -> bool:
        """Whether any term reads the teacher's logits (a term that does not say is assumed to)."""
        return any(getattr(term, "needs_teacher", False) and getattr(term, "needs_teacher_logits", True)
                   for term in self.terms.values())

    def forward(self, student_out: SegOutput, labels: Tensor, teacher_out: Optional[SegOutput] = None
                ) -> Dict[str, Tensor]:
        return {name: self.weights[name] * term(student_out, labels, teacher_out) for name, term in self.terms.items()}


def build_criterion(terms_cfg: Dict[str, Dict[str, Any]], context: TermContext) -> Criterion:
    """``terms_cfg``: name -> options (``weight`` plus the term's own keys), e.g. {"ce": {"weight": 1.0}}."""

    if not terms_cfg:
        raise ValueError("loss.terms is empty; give at least ce: {weight: 1.0}")
    terms, weights = {}, {}
    for name, options in terms_cfg.items():
        if name not in _TERMS:
            close = difflib.get_close_matches(name, list(_TERMS), n=1)
            hint = " (did you mean %r?)" % close[0] if close else ""
            raise ValueError("unknown loss term loss.terms.%s%s; valid terms: %s"
                             % (name, hint, ", ".join(list_terms())))
        options = dict(options or {})
        weight = options.pop("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError("loss.terms.%s.weight must be a number >= 0, got %r" % (name, weight))
        cls = _TERMS[name]
        if getattr(cls, "needs_teacher", False) and context.teacher is None:
            raise ValueError("loss.terms.%s needs a teacher; set teacher.checkpoint (hmkd distill)" % name)
        terms[name] = cls.build(options, context, "loss.terms.%s" % name)
        weights[name] = float(weight)
    if getattr(context.student, "aux_head", None) is not None and "aux_ce" not in terms:
        raise ValueError("model.options.aux_head is true but loss.terms has no aux_ce: the auxiliary head would never "
                         "train (and DDP would stop on its unused parameters); add aux_ce or set aux_head=false")
    return Criterion(terms, weights)
