"""The trainer with data.unlabeled: batches of labelled then unlabelled images, both streams checkpointed, and
configs or checkpoints that cannot continue the unlabelled order refused in one line."""
import cv2
import numpy as np
import pytest
from engine_config import tiny_config
from runner import run_cli

from hmkd.config import config_from_dict
from hmkd.data import generate_scene
from hmkd.engine.trainer import Trainer


@pytest.fixture
def unlabeled_folder(tmp_path):
    folder = tmp_path / "unlabeled"
    folder.mkdir()
    for k in range(7):
        image, _ = generate_scene(np.random.Generator(np.random.PCG64([3, k])), 3, (32, 48))
        assert cv2.imwrite(str(folder / ("%02d.png" % k)), image)
    return str(folder)


def test_batches_hold_both_kinds_and_checkpoints_both_positions(tmp_path, unlabeled_folder):
    cfg = config_from_dict(tiny_config(data={"unlabeled": unlabeled_folder, "unlabeled_ratio": 1.5},
                                       schedule={"max_iters": 4}))
    trainer = Trainer(cfg, str(tmp_path / "run"))
    assert len(trainer.unlabeled_set) == 7 and len(trainer.train_set) == 12
    batches = trainer.batches()
    batch = next(batches)
    assert batch["image"].shape == (5, 3, 32, 40)  # 2 labelled + round(1.5 x 2) unlabelled
    assert (batch["label"][2:] == 255).all() and not (batch["label"][:2] == 255).all()
    assert all(n.startswith("synthetic_train_") for n in batch["name"][:2])
    assert all(n.isdigit() for n in batch["name"][2:])  # the unlabelled files' names
    for _ in range(4):  # 7 // 3 = 2 unlabelled batches per epoch
        next(batches)
    assert (trainer.epoch, trainer.consumed, trainer.unlabeled_position) == (0, 5, (2, 1))
    state = trainer.state_dict()
    assert state["unlabeled"] == {"epoch": 2, "consumed": 1, "images": 7}
    assert "unlabeled" not in Trainer(config_from_dict(tiny_config()), str(tmp_path / "plain")).state_dict()


def test_a_checkpoint_and_config_that_disagree_on_unlabelled_images_are_refused(tmp_path, unlabeled_folder):
    run_dir = str(tmp_path / "run")
    plain = Trainer(config_from_dict(tiny_config(schedule={"max_iters": 3})), run_dir)
    plain.train_step(plain.batches())
    plain.save()
    assert Trainer(config_from_dict(tiny_config()), run_dir).resume()  # no unlabelled state, none configured: loads
    mixed = Trainer(config_from_dict(tiny_config(data={"unlabeled": unlabeled_folder})), run_dir)
    with pytest.raises(ValueError, match=r"^data.unlabeled: the checkpoint .*step_00000001.pth was trained with 0 "
                                         r"unlabelled images, the config gives 7; set data.unlabeled as that run had "
                                         r"it, or start a new run directory$"):
        mixed.resume()


def test_a_missing_unlabeled_folder_is_one_line_from_the_cli(tmp_path, write_config):
    config = write_config(data={"unlabeled": str(tmp_path / "no_frames")})
    result = run_cli("train", config, "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: data.unlabeled: %s does not exist" % (tmp_path / "no_frames") in result.stderr
