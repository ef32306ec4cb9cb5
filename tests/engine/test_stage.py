"""Stages: an option that only an evaluation stage honours warns when a training stage is given it."""
import pytest

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
