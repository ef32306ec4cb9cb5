"""The criterion: named, weighted loss terms chosen by the config, as one module saved with the student.

A term is an ``nn.Module`` class registered under a name with the dataclass of its options (a
:class:`TermOptions`, whose ``weight`` every term has); it is built with ``build(options, context, where)`` from
its checked options and receives ``(student_out, labels, teacher_out)``. A term that reads the teacher sets
``needs_teacher = True``, and ``needs_teacher_logits = False`` when it reads only the teacher's features, so that
the teacher's decode head is skipped when no term needs it. Terms with parameters (alignment modules)
are trained in the student's optimizer and saved in checkpoints because the criterion is part of the trainable
module; they are dropped from exported student weights.
"""
import difflib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Type

from torch import Tensor, nn

from hmkd.config.typed import check_at_least, from_dict
from hmkd.models.output import SegOutput, Tap, attention_taps

_TERMS: Dict[str, Tuple[Callable, Type]] = {}


class TermContext(NamedTuple):
    """What a term may need to size itself: declared features of both models (never a dummy forward), and the
    void label of the dataset's labels (``dataset.ignore_index``)."""

    student: nn.Module
    teacher: Optional[nn.Module]
    ignore_index: int


@dataclass
class TermOptions:
    """What every term takes: its ``weight`` in the total loss."""

    weight: float = 1.0

    def __post_init__(self):
        check_at_least("weight", self.weight, 0.0)


def register_term(name: str, options: Type[TermOptions] = TermOptions):
    def wrap(cls):
        if name in _TERMS:
            raise ValueError("loss term %r registered twice" % name)
        _TERMS[name] = (cls, options)
        return cls
    return wrap


def list_terms() -> List[str]:
    return sorted(_TERMS)


def term_options(name: str, where: str = "loss.terms") -> Type[TermOptions]:
    """The options dataclass of term ``name``; an unknown name fails with the closest registered one."""
    if name not in _TERMS:
        close = difflib.get_close_matches(name, list(_TERMS), n=1)
        hint = " (did you mean %r?)" % close[0] if close else ""
        raise ValueError("unknown loss term %s.%s%s; valid terms: %s" % (where, name, hint, ", ".join(list_terms())))
    return _TERMS[name][1]


def check_terms(terms_cfg: Dict[str, Any], where: str = "loss.terms") -> Dict[str, TermOptions]:
    """``terms_cfg`` (name -> options mapping) checked term by term, each at its own path ``where.name``."""
    if not isinstance(terms_cfg, dict):
        raise ValueError("config key %r must be a mapping of term names to options, got %r" % (where, terms_cfg))
    if not terms_cfg:
        raise ValueError("%s is empty; give at least ce: {weight: 1.0}" % where)
    return {name: from_dict(term_options(name, where), options or {}, "%s.%s" % (where, name))
            for name, options in terms_cfg.items()}


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

    def taps(self, side: str) -> Tuple[Tap, ...]:
        """The attention taps the ``side`` ("student" / "teacher") model must compute for the terms, each once (a
        term's ``taps`` maps each side to the Tap it reads; stage outputs need no request)."""
        return tuple(attention_taps([term.taps[side] for term in self.terms.values() if hasattr(term, "taps")]))

    def forward(self, student_out: SegOutput, labels: Tensor, teacher_out: Optional[SegOutput] = None
                ) -> Dict[str, Tensor]:
        return {name: self.weights[name] * term(student_out, labels, teacher_out) for name, term in self.terms.items()}


def build_criterion(terms_cfg: Dict[str, Dict[str, Any]], context: TermContext) -> Criterion:
    """``terms_cfg``: name -> options (``weight`` plus the term's own keys), e.g. {"ce": {"weight": 1.0}}."""
    terms, weights = {}, {}
    for name, options in check_terms(terms_cfg).items():
        cls = _TERMS[name][0]
        where = "loss.terms.%s" % name
        if getattr(cls, "needs_teacher", False) and context.teacher is None:
            raise ValueError("%s needs a teacher; set teacher.checkpoint (hmkd distill)" % where)
        terms[name] = cls.build(options, context, where)
        weights[name] = options.weight
    if getattr(context.student, "aux_head", None) is not None and "aux_ce" not in terms:
        raise ValueError("model.options.aux_head is true but loss.terms has no aux_ce: the auxiliary head would never "
                         "train (and DDP would stop on its unused parameters); add aux_ce or set aux_head=false")
    return Criterion(terms, weights)
