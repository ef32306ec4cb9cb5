"""hmkd.compat: the stack differences. A checkpoint with RNG states and a config loads on both stacks."""
import random

import numpy as np
import torch

from hmkd.compat import torch_load


def test_a_whole_checkpoint_loads_on_this_stack(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "rng": {"python": random.getstate(), "numpy": np.random.get_state()},
             "config": {"optim": {"lr": 0.01}}}
    torch.save(state, str(tmp_path / "ckpt.pth"))
    loaded = torch_load(str(tmp_path / "ckpt.pth"))
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["config"] == state["config"]
    assert loaded["rng"]["python"] == state["rng"]["python"]
    np.testing.assert_array_equal(loaded["rng"]["numpy"][1], state["rng"]["numpy"][1])
