"""The console script: subcommands listed, flops in text and JSON, bad input as one-line errors."""
import json

import pytest
from runner import run_cli

from hmkd.cli.main import main


def test_help_lists_subcommands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("models", "flops"):
        assert command in result.stdout


def test_models_lists_every_family_and_nothing_else():
    result = run_cli("models", "--num-classes", "3")  # a process of its own: what a user sees, stderr included
    assert result.returncode == 0 and result.stderr == ""
    assert "segformer_b4" in result.stdout and "deeplabv3_r101" in result.stdout
    assert "64@/4 128@/8 320@/16 512@/32" in result.stdout  # SegFormer-B4's declared stages


def test_flops_on_a_cpu_prints_no_warning():
    """torch 2's cpp_extension, imported with mmcv, logged "No CUDA runtime is found, using CUDA_HOME=..." here."""
    from hmkd.models.complexity import available_counters

    for counter in available_counters():
        result = run_cli("flops", "segformer_b0", "--num-classes", "19", "--size", "64x64", "--counter", counter)
        assert result.returncode == 0 and result.stderr == "", (counter, result.stderr)
        assert result.stdout.startswith("segformer_b0 (19 classes, 64x64): "), result.stdout


def mmcv_installed():
    import importlib.util

    return importlib.util.find_spec("mmcv") is not None


def test_flops_json_counts_attention_products(capsys):
    assert main(["flops", "segformer_tiny", "--num-classes", "3", "--size", "64x96", "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["params"] == sum(p.numel() for p in __import__("hmkd.models", fromlist=["x"]).build_model(
        "segformer_tiny", 3).parameters())
    assert info["counter"] == ("mmcv" if mmcv_installed() else "torch")
    if info["counter"] == "mmcv":  # mmcv misses products written as @: ours are added
        assert info["flops_attention"] > 0 and info["flops"] == info["flops_mmcv"] + info["flops_attention"]
    else:  # torch's counter sees them itself
        assert 0 < info["flops_attention"] < info["flops"]
    # Stage 1 of the tiny variant: 16x24 tokens, keys reduced 8x8 to 2x3, width 8; Q K^T and A V.
    assert info["flops_attention"] >= 2 * 384 * 6 * 8


def test_flops_scale_with_input_area(capsys):
    main(["flops", "deeplabv3_tiny", "--num-classes", "3", "--size", "64x64", "--json"])
    small = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    main(["flops", "deeplabv3_tiny", "--num-classes", "3", "--size", "128x128", "--json"])
    large = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert small["params"] == large["params"]
    assert 3.5 < large["flops"] / small["flops"] <= 4.0  # a CNN's cost is linear in the pixel count


@pytest.mark.parametrize("args,expected", [
    (["flops", "resnet9", "--num-classes", "3", "--size", "64x64"], "unknown model 'resnet9'"),
    (["flops", "deeplabv3_tiny", "--num-classes", "3", "--size", "64by64"], "argument --size: sizes are HxW"),
])
def test_bad_input_is_one_line_error(args, expected):
    result = run_cli(*args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_data_command_checks_and_writes_the_list(tmp_path):
    import cv2
    import numpy as np
    import yaml

    root = tmp_path / "camvid"
    for folder in ("train", "trainannot", "val", "valannot"):
        (root / folder).mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(root / "train" / ("f%d.png" % i)), np.zeros((8, 12, 3), np.uint8))
        cv2.imwrite(str(root / "trainannot" / ("f%d.png" % i)), np.full((8, 12), i, np.uint8))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"model": {"name": "deeplabv3_tiny"}, "data": {"name": "camvid",
                                                                                  "root": str(root)}}))
    result = run_cli("data", str(config), "--write-list", str(tmp_path / "train.txt"))
    assert result.returncode == 0, result.stderr
    assert "camvid/train: 2 samples, 11 classes" in result.stdout
    lines = (tmp_path / "train.txt").read_text().split("\n")
    assert lines[0].split() == [str(root / "train" / "f0.png"), str(root / "trainannot" / "f0.png")]
    cv2.imwrite(str(root / "trainannot" / "f1.png"), np.full((8, 12), 40, np.uint8))
    bad = run_cli("data", str(config))
    assert bad.returncode == 2 and "f1.png" in bad.stderr and "Traceback" not in bad.stderr


def test_warnings_are_one_line_without_source(tmp_path):
    result = run_cli("train", "configs/synthetic/deeplabv3_student.yaml", "data.root=/nowhere", "schedule.max_iters=0",
                     "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "UserWarning: data keys root are ignored for name=synthetic\n" in result.stderr
    assert "warnings.warn" not in result.stderr and ".py:" not in result.stderr


def test_flops_counter_by_name_or_one_line_error(capsys):
    from hmkd.models.complexity import available_counters

    for counter in ("mmcv", "torch"):
        code = main(["flops", "deeplabv3_tiny", "--num-classes", "3", "--size", "64x64", "--counter", counter])
        out, err = capsys.readouterr()
        if counter in available_counters():
            assert code == 0 and ("torch.utils.flop_counter" in out) == (counter == "torch")
        else:
            assert code == 2 and err.strip().splitlines() == [
                "hmkd flops: error: the %s FLOP counter is not installed here (%s); available: %s" % (
                    counter, "mmcv 1.7" if counter == "mmcv" else "torch >= 2.1", ", ".join(available_counters()))]


@pytest.mark.slow
def test_a_lost_peer_is_one_line_and_exit_2(tmp_path):
    """Two `hmkd train` ranks (torchrun's variables, no torchrun to tidy up after them); rank 1 is killed mid-run:
    rank 0's next collective fails and the command ends with one line that says so, not a gloo traceback."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    import yaml
    from engine_config import tiny_config
    from runner import REPO, cli_env

    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump(tiny_config(schedule={"max_iters": 400}, train={"checkpoint_interval": 2})))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = cli_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", HMKD_COLLECTIVE_TIMEOUT_S="20")
    ranks = [subprocess.Popen([sys.executable, "-m", "hmkd", "train", str(config), "--run-dir", str(tmp_path / "run")],
                              stdout=subprocess.PIPE if r == 0 else subprocess.DEVNULL, stderr=subprocess.STDOUT,
                              text=True, cwd=REPO, env=dict(env, RANK=str(r), LOCAL_RANK=str(r))) for r in (0, 1)]
    for line in ranks[0].stdout:  # rank 0 logs the steps
        if line.startswith("step 4/"):
            break
    else:
        raise AssertionError("rank 0 ended before step 4")
    os.kill(ranks[1].pid, signal.SIGKILL)
    ranks[1].wait()
    rest, _ = ranks[0].communicate(timeout=120)
    assert ranks[0].returncode == 2
    last = rest.strip().splitlines()[-1]
    assert last.startswith("hmkd train: error: a collective failed on rank 0 on "), rest[-2000:]
    assert "the run resumes from its latest checkpoint" in last and "Traceback" not in rest
