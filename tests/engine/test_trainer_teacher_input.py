"""Distillation with a teacher whose weights expect another normalisation than the student's: each network sees the
raw image normalised its own way (to float32 rounding: 4 ulps of the largest value, tests/data/test_renormalize.py)."""
import numpy as np
import torch
from engine_config import tiny_config

from hmkd.config import config_from_dict
from hmkd.data import Normalize
from hmkd.engine.trainer import Trainer
from hmkd.models import build_model
from hmkd.models.weights import weights_family

# No augmentation (scale 1, no flip, crop = image), so each network input is a whole normalised raw scene.
PLAIN_DATA = {"crop_size": [32, 48], "scale_range": [1.0, 1.0], "scale_step": 0, "flip": False}


def normalized(mode, image_bgr):
    out = np.empty((3,) + image_bgr.shape[:2], dtype=np.float32)
    Normalize(mode).into_chw(image_bgr, out)
    return torch.from_numpy(out)


def distiller(tmp_path, student_norm, teacher_norm):
    teacher_path = tmp_path / "teacher.pth"
    torch.save({"model": build_model("segformer_tiny", 3).state_dict(), "hmkd_version": "0",
                "normalize": teacher_norm}, teacher_path)
    cfg = config_from_dict(tiny_config(
        model={"normalize": student_norm}, data=PLAIN_DATA,
        teacher={"name": "segformer_tiny", "checkpoint": str(teacher_path)},  # normalize: auto, from the file
        loss={"terms": {"ce": {"weight": 1.0}, "aux_ce": {"weight": 0.4}, "kd": {"weight": 1.0}}},
        schedule={"max_iters": 1}))
    return Trainer(cfg, str(tmp_path / "run"))


def seen_inputs(trainer):
    seen = {"student": [], "teacher": []}
    trainer.module.student.register_forward_pre_hook(lambda _, args: seen["student"].append(args[0].detach()))
    trainer.teacher.register_forward_pre_hook(lambda _, args: seen["teacher"].append(args[0].detach()))
    trainer.train_step(trainer.batches())
    return seen


def raw_scenes(trainer):
    return [trainer.train_set.load(i)[0] for i in range(len(trainer.train_set))]


def test_teacher_sees_its_own_normalisation_of_the_raw_image(tmp_path):
    trainer = distiller(tmp_path, "bgr_mean", "imagenet_rgb")
    assert trainer.cfg.teacher.normalize == "imagenet_rgb" and trainer.teacher_input is not None
    seen = seen_inputs(trainer)
    (student,), (teacher,) = seen["student"], seen["teacher"]
    scenes = raw_scenes(trainer)
    assert student.shape == teacher.shape and student.shape[0] == 2
    for image_s, image_t in zip(student, teacher):
        index = next(i for i, raw in enumerate(scenes) if torch.equal(normalized("bgr_mean", raw), image_s))
        expected = normalized("imagenet_rgb", scenes[index])
        assert float((image_t - expected).abs().max()) <= 4 * np.finfo(np.float32).eps * 2.7  # |values| <= 2.64
    saved = trainer.state_dict()["config"]  # what checkpoints and config.yaml record
    assert saved["data"]["normalize"] == saved["model"]["normalize"] == "bgr_mean"
    assert saved["teacher"]["normalize"] == "imagenet_rgb"


def test_same_normalisation_hands_the_teacher_the_student_batch_itself(tmp_path):
    trainer = distiller(tmp_path, "imagenet_rgb", "imagenet_rgb")
    assert trainer.teacher_input is None
    seen = seen_inputs(trainer)
    assert seen["teacher"][0].data_ptr() == seen["student"][0].data_ptr()  # no op at all: the very same tensor


def test_model_pth_records_the_students_normalisation(tmp_path):
    trainer = distiller(tmp_path, "imagenet_rgb", "bgr_mean")
    trainer.train_step(trainer.batches())
    trainer.finish()
    family = weights_family(trainer.files.model)
    assert family.name == "hmkd" and family.normalize == "imagenet_rgb"
