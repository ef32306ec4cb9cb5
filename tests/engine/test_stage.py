"""Stages: an option that only an evaluation stage honours warns when a training stage is given it; a run
directory's files and folders get the modes open() and mkdir give under the umask."""
import os

import pytest
from engine_config import tiny_config
from modes import UMASKS, umask, wrong_modes

from hmkd.config import config_from_dict
from hmkd.engine.stage import run_stage
from hmkd.rundir import RunDir


def test_training_warns_that_it_ignores_server_files(tmp_path):
    cfg = config_from_dict({"model": {"name": "deeplabv3_tiny"}, "data": {"name": "cityscapes", "root": "/data/cs"},
                            "eval": {"server_files": True}})
    run = RunDir(str(tmp_path))
    run.mark_done({"mIoU": 0.5})
    with pytest.warns(UserWarning, match="eval.server_files is ignored by training's own evaluation"):
        assert run_stage(cfg, run.path) == {"mIoU": 0.5}


@pytest.mark.parametrize("mask", UMASKS)
def test_a_run_directory_is_readable_as_the_umask_says(tmp_path, mask):
    """A teammate (or a job under another uid) reads checkpoints, model.pth and eval.json of a run on shared storage:
    each file 0666 & ~umask, each folder 0777 & ~umask, as open() and mkdir make them (not mkstemp's 0600)."""
    cfg = config_from_dict(tiny_config(model={"name": "segformer_tiny", "options": {}}, loss={"terms": {"ce": {}}},
                                       schedule={"max_iters": 2}, train={"checkpoint_interval": 1},
                                       data={"num_train": 2, "num_val": 1}))
    run = RunDir(str(tmp_path / "run"))
    with umask(mask):
        run_stage(cfg, run.path)
    assert wrong_modes(run.path, mask) == {}
    for path in (run.config, run.model, run.eval_json, run.done, run.metrics, run.train_log, run.ranks,
                 run.loss_curves, os.path.join(run.checkpoints, "latest")):
        assert os.path.isfile(path), path
