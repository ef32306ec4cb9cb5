"""The trainer's CKA probe: which stages it measures, cka.json at step 0 and after the last step of a tiny
distillation (values checked against a direct computation), kept across a resume, absent where it does not apply."""
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from engine_config import tiny_config

from hmkd.config import config_from_dict
from hmkd.engine.cka_probe import aligned_stages, probe_cka, read_cka, record_cka
from hmkd.engine.trainer import Trainer
from hmkd.models import build_model

GLA = {"weight": 1.0, "dim": 16, "patch_size": 2}


def distill_config(tmp_path, terms=None, **sections):
    path = tmp_path / "teacher.pth"
    torch.manual_seed(1)
    torch.save({"model": build_model("segformer_tiny", 3).state_dict()}, path)
    terms = terms or {"ce": {"weight": 1.0}, "aux_ce": {"weight": 0.4}, "gla": GLA, "hfa": {"weight": 1.0}}
    sections.setdefault("schedule", {"max_iters": 3})
    return config_from_dict(tiny_config(teacher={"name": "segformer_tiny", "checkpoint": str(path)},
                                        loss={"terms": terms}, **sections))


def numpy_cka(x, y):
    x, y = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def direct_cka(trainer, index, count):
    """CKA of stage ``index`` over the first ``count`` validation images, written out: both maps pooled to the
    smaller one's size, rows = positions of every image."""
    student, teacher = trainer.module.student, trainer.teacher
    student.eval()
    rows_s, rows_t = [], []
    with torch.no_grad():
        for i in range(count):
            image = trainer.val_set[i]["image"][None]
            fs, ft = student(image).features[index], teacher(image).features[index]
            size = (min(fs.shape[2], ft.shape[2]), min(fs.shape[3], ft.shape[3]))
            for feat, rows in ((fs, rows_s), (ft, rows_t)):
                pooled = F.adaptive_avg_pool2d(feat, size)
                rows.append(pooled.permute(0, 2, 3, 1).reshape(-1, feat.shape[1]).double().numpy())
    student.train()
    return numpy_cka(np.concatenate(rows_s), np.concatenate(rows_t))


def test_aligned_stages_are_the_feature_terms_stages(tmp_path):
    cfg = distill_config(tmp_path, {"ce": {"weight": 1.0}, "aux_ce": {"weight": 0.4}, "gla": GLA,
                                    "hfa": {"weight": 1.0}, "fitnet": {"weight": 1.0, "stage": 0},
                                    "kd": {"weight": 1.0}})
    trainer = Trainer(cfg, str(tmp_path / "run"))
    assert aligned_stages(trainer.module.criterion) == {"stage1": ["gla", "fitnet"], "stage3": ["hfa"]}


def test_distillation_writes_start_and_end_cka_and_a_resume_keeps_the_start(tmp_path):
    cfg = distill_config(tmp_path)
    run_dir = str(tmp_path / "run")
    trainer = Trainer(cfg, run_dir)
    expected = {"stage1": direct_cka(trainer, 0, 3), "stage3": direct_cka(trainer, 2, 3)}
    trainer.run()
    record = json.load(open(trainer.files.cka))
    assert record["images"] == 3 == len(trainer.val_set)  # min(train.cka_images = 8, 3 validation images)
    assert record["stages"] == {"stage1": ["gla"], "stage3": ["hfa"]} and record["terms"] == ["gla", "hfa"]
    assert record["steps"] == {"start": 0, "end": 3}
    for key in ("stage1", "stage3"):
        assert record["start"][key] == pytest.approx(expected[key], rel=1e-6)
        assert 0 <= record["start"][key] <= 1 and 0 <= record["end"][key] <= 1
    assert record["end"] == pytest.approx({"stage1": direct_cka(trainer, 0, 3), "stage3": direct_cka(trainer, 2, 3)},
                                          rel=1e-6)
    assert record["end"] != record["start"]  # three steps moved the student
    assert trainer.module.training  # the probe put the student back in train mode
    assert "CKA teacher-student at step 0 (3 validation images): stage1 " in open(trainer.files.train_log).read()

    longer = Trainer(distill_config(tmp_path, schedule={"max_iters": 6}), run_dir)
    longer.run()  # resumes from step 3: the start values are not measured again
    resumed = read_cka(longer.files.cka)
    assert resumed["start"] == record["start"] and resumed["steps"] == {"start": 0, "end": 6}
    assert resumed["end"] != record["end"]


@pytest.mark.parametrize("case", ["cka_images=0", "no feature term", "no teacher"])
def test_no_cka_json_where_it_does_not_apply(tmp_path, case):
    if case == "cka_images=0":
        cfg = distill_config(tmp_path, train={"cka_images": 0})
    elif case == "no feature term":
        cfg = distill_config(tmp_path, {"ce": {"weight": 1.0}, "aux_ce": {"weight": 0.4}, "kd": {"weight": 1.0}})
    else:
        cfg = config_from_dict(tiny_config(schedule={"max_iters": 1}))
    cfg.schedule.max_iters = 1
    trainer = Trainer(cfg, str(tmp_path / "run"))
    trainer.run()
    assert not os.path.exists(trainer.files.cka) and os.path.isfile(trainer.files.eval_json)


def test_a_negative_image_count_is_a_config_error(tmp_path):
    with pytest.raises(ValueError, match="train.cka_images must be >= 0, got -1"):
        config_from_dict(tiny_config(train={"cka_images": -1}))


def test_probe_restores_eval_mode_too_and_record_keeps_start_only_for_the_same_probe(tmp_path):
    student = build_model("deeplabv3_tiny", 3).eval()
    images = [torch.randn(1, 3, 32, 48)]
    values = probe_cka(student, student, images, {"stage2": ["fitnet"]})
    assert values == {"stage2": pytest.approx(1.0)} and not student.training
    path = str(tmp_path / "cka.json")
    record_cka(path, "start", {"stage2": 0.25}, 4, {"stage2": ["fitnet"]}, 0)
    assert record_cka(path, "end", {"stage2": 0.5}, 4, {"stage2": ["fitnet"]}, 9)["start"] == {"stage2": 0.25}
    changed = record_cka(path, "end", {"stage2": 0.5}, 2, {"stage2": ["fitnet"]}, 9)  # other images: start dropped
    assert "start" not in changed and changed["steps"] == {"end": 9}
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        read_cka(str(tmp_path / "bad.json"))


@pytest.mark.slow
def test_two_gloo_processes_rank_0_probes_and_both_ranks_finish(tmp_path, write_config):
    """Only rank 0 runs the probe (no collective in it): the ranks stay in step to the end, and the start values
    equal a single process's, whose student is rank 0's (DDP hands rank 0's weights to every rank)."""
    import subprocess
    import sys

    from runner import REPO, cli_env, run_cli

    path = tmp_path / "teacher.pth"
    torch.manual_seed(1)
    torch.save({"model": build_model("segformer_tiny", 3).state_dict()}, path)
    config = write_config(teacher={"name": "segformer_tiny", "checkpoint": str(path)},
                          loss={"terms": {"ce": {"weight": 1.0}, "aux_ce": {"weight": 0.4}, "gla": GLA,
                                          "hfa": {"weight": 1.0}}},
                          schedule={"max_iters": 3})
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
                "-m", "hmkd"]
    two = str(tmp_path / "two")
    result = subprocess.run(torchrun + ["distill", config, "--run-dir", two], capture_output=True, text=True,
                            timeout=600, env=cli_env(), cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    one = str(tmp_path / "one")
    assert run_cli("distill", config, "--run-dir", one).returncode == 0
    record_two, record_one = read_cka(os.path.join(two, "cka.json")), read_cka(os.path.join(one, "cka.json"))
    assert record_two["steps"] == {"start": 0, "end": 3} and os.path.isfile(os.path.join(two, "DONE"))
    assert record_two["start"] == pytest.approx(record_one["start"], rel=1e-9)
    assert all(0 <= v <= 1 for v in record_two["end"].values())
