"""Every shipped HMKD paper recipe, resolved and built with its real models, carries the authors' value for every
point of the method spec's "The authors' arithmetic, exactly" (docs/hmkd-authors.md has the table)."""
import glob
import os

import pytest
import torch
from torch import nn

from hmkd.config import load_config
from hmkd.engine.optim import build_param_groups
from hmkd.losses.criterion import TermContext, build_criterion
from hmkd.models import build_model
from hmkd.models.output import Tap
from hmkd.models.registry import model_family

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPES = {  # the paper's datasets' HMKD recipes -> direction
    "configs/cityscapes/hmkd_segformer_b4_to_deeplabv3_r18.yaml": "headline",
    "configs/cityscapes/hmkd_segformer_b4_mmseg_to_deeplabv3_r18.yaml": "headline",
    "configs/camvid/hmkd_segformer_b4_to_deeplabv3_r18.yaml": "headline",
    "configs/cityscapes/hmkd_deeplabv3_r101_to_segformer_b0.yaml": "reverse",
    "configs/cityscapes/hmkd_mmseg_deeplabv3_r101_to_segformer_b0.yaml": "reverse",
}
_MODELS = {}


def _model(name, options):
    key = (name, tuple(sorted(options.items())))
    if key not in _MODELS:
        _MODELS[key] = build_model(name, 19, **options)
    return _MODELS[key]


def test_every_paper_recipe_is_listed():
    shipped = {os.path.relpath(path, ROOT) for dataset in ("cityscapes", "camvid")
               for path in glob.glob(os.path.join(ROOT, "configs", dataset, "hmkd_*.yaml"))}
    assert shipped == set(RECIPES)


@pytest.mark.parametrize("path", sorted(RECIPES))
def test_paper_recipe_computes_the_authors_arithmetic(path):
    direction = RECIPES[path]
    cfg = load_config(os.path.join(ROOT, path))
    student = _model(cfg.model.name, dict(cfg.model.options))
    teacher = _model(cfg.teacher.name, dict(cfg.teacher.options))
    assert (model_family(student), model_family(teacher)) == (
        ("cnn", "transformer") if direction == "headline" else ("transformer", "cnn"))
    criterion = build_criterion(cfg.loss.terms, TermContext(student, teacher, 255))
    gla, hfa = criterion.terms["gla"], criterion.terms["hfa"]
    transformer, cnn = ("teacher", "student") if direction == "headline" else ("student", "teacher")

    # both terms at weight 1, next to CE
    assert criterion.weights["gla"] == criterion.weights["hfa"] == criterion.weights["ce"] == 1.0
    # taps: stage 1's second-to-last attention entry for GLA, stage 3's mean for HFA; CNN c1 and c3
    assert gla.taps == {transformer: Tap(0, "attn_second_last"), cnn: Tap(0, "output")}
    assert hfa.taps == {transformer: Tap(2, "attn_mean"), cnn: Tap(2, "output")}
    # GLA: D = the student's stage-1 width; a 1x1 projection only on a side of another width
    widths = {"student": student.feature_info[0].channels, "teacher": teacher.feature_info[0].channels}
    for side, relation in (("student", gla.student_relation), ("teacher", gla.teacher_relation)):
        assert relation.patch_embed.out_channels == widths["student"]
        assert isinstance(relation.proj, nn.Identity) == (widths[side] == widths["student"]), side
        # no-padding patch embedding, kernel = stride = 8
        assert relation.edges == "drop" and relation.patch_embed.padding == (0, 0)
        assert relation.patch_embed.kernel_size == relation.patch_embed.stride == (8, 8)
    if direction == "headline":   # MiT-B4 and R18 are both 64 wide at stage 1
        assert widths == {"student": 64, "teacher": 64}
    else:                         # B0's 32; only R101's 256 is projected
        assert widths == {"student": 32, "teacher": 256}
        assert (gla.teacher_relation.proj.in_channels, gla.teacher_relation.proj.out_channels) == (256, 32)
    assert gla.reduction == "sum"
    # HFA: teacher resize align_corners=True; context on the CNN, before the resize in the reverse direction
    assert hfa.resize_align_corners is True
    assert hfa.context_sides == (cnn,)
    if direction == "reverse":
        assert hfa.teacher_context_at == "input"
    # bias-free offset conv (branch convs keep theirs); grid_sample with align_corners=False
    assert hfa.offset_head.offset.bias is None and hfa.offset_head.branch_a[0].bias is not None
    assert hfa.align_corners is False
    # per-GPU BatchNorm in the alignment modules; in the student only in the reverse script
    assert hfa.sync_bn is False
    assert cfg.train.sync_bn is (direction == "headline")

    # optimizer: CIRKD's SGD for the headline; the reverse script's one group (student + GLA + HFA), lr 0.002
    opt, sched = cfg.optim, cfg.schedule
    assert (opt.name, opt.momentum, opt.weight_decay, sched.power, sched.warmup_iters) == ("sgd", 0.9, 1e-4, 0.9, 0)
    assert opt.lr == (0.01 if direction == "headline" else 0.002)
    module = nn.ModuleDict({"student": student, "criterion": criterion})
    groups = build_param_groups(module, opt)
    assert len(groups) == 1 and groups[0]["lr_mult"] == 1.0
    assert len(groups[0]["params"]) == len([p for p in module.parameters() if p.requires_grad])


def test_the_trainer_keeps_authors_bn_per_gpu(tmp_path):
    """train.sync_bn and hfa's sync_bn choose which BatchNorms become SyncBatchNorm (on one process too: the
    conversion is what a multi-GPU run gets)."""
    from hmkd.engine.trainer import TrainableModule

    torch.manual_seed(0)
    student, teacher = build_model("deeplabv3_tiny", 5), build_model("segformer_tiny", 5)
    for student_sync, hfa_variant in ((True, "authors"), (False, "project")):
        criterion = build_criterion({"ce": {}, "hfa": {"variant": hfa_variant}}, TermContext(student, teacher, 255))
        module = TrainableModule(build_model("deeplabv3_tiny", 5), criterion)
        module.sync_batchnorm(student_sync)
        student_kinds = {type(m) for m in module.student.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
        hfa_kinds = {type(m) for m in module.criterion.terms["hfa"].modules()
                     if isinstance(m, nn.modules.batchnorm._BatchNorm)}
        assert student_kinds == {nn.SyncBatchNorm if student_sync else nn.BatchNorm2d}
        assert hfa_kinds == {nn.BatchNorm2d if hfa_variant == "authors" else nn.SyncBatchNorm}
