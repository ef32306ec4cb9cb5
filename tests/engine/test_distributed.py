"""The device is chosen once (hmkd.engine.distributed): a GPU the torch build has no kernels for is refused there
with one line that says what to use, on the CPU with the real architecture lists of both stacks' wheels.

Usage: pytest tests/engine/test_distributed.py
"""
import subprocess
import sys

import pytest
import torch

from hmkd import __version__
from hmkd.engine import distributed
from hmkd.engine.distributed import has_kernels_for, pick_device
from runner import REPO, cli_env

# torch.cuda.get_arch_list() of torch 1.11.0+cu113 (the legacy stack's and its image's wheels) ...
CU113 = ["sm_37", "sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86"]
# ... and of a current CUDA 12/13 wheel: SASS up to Blackwell plus PTX of the newest, for GPUs after it.
MODERN = ["sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]


@pytest.mark.parametrize("capability,expected", [
    ((8, 0), True),    # A100: sm_80 exactly
    ((8, 6), True),    # A10 / RTX 30xx: sm_86
    ((8, 9), True),    # L4 / RTX 40xx: sm_86's SASS runs on 8.9 (same major, higher minor)
    ((7, 0), True),    # V100
    ((3, 7), True),    # K80
    ((9, 0), False),   # H100 / H200: no sm_9x and no PTX to compile
    ((10, 0), False),  # B200
    ((12, 0), False),  # RTX 50xx
    ((3, 5), False),   # older than anything listed
])
def test_cu113_wheels_stop_at_ampere(capability, expected):
    assert has_kernels_for(capability, CU113) is expected


@pytest.mark.parametrize("capability,expected", [
    ((9, 0), True), ((8, 0), True), ((8, 9), True), ((10, 0), True), ((10, 3), True), ((12, 0), True),
    ((12, 1), True),   # sm_120 SASS, and compute_120 PTX as well
    ((13, 0), True),   # a future GPU: the driver compiles compute_120's PTX for it
    ((7, 5), False),   # Turing: neither SASS of major 7 nor PTX <= 7.5
])
def test_modern_wheels(capability, expected):
    assert has_kernels_for(capability, MODERN) is expected


def test_sass_never_runs_on_another_major_nor_a_lower_minor():
    assert not has_kernels_for((9, 0), ["sm_86"])
    assert not has_kernels_for((8, 0), ["sm_86"])
    assert has_kernels_for((8, 7), ["sm_86"])


def test_ptx_runs_on_every_capability_from_its_own():
    assert has_kernels_for((9, 0), ["compute_80"])
    assert has_kernels_for((8, 0), ["compute_80"])
    assert not has_kernels_for((7, 5), ["compute_80"])
    assert has_kernels_for((12, 0), CU113 + ["compute_86"])  # the same wheel with PTX would run on Hopper and later


def test_architecture_specific_and_unknown_targets():
    assert has_kernels_for((9, 0), ["sm_90a"]) and not has_kernels_for((10, 0), ["sm_90a"])
    assert not has_kernels_for((10, 0), ["compute_90a"])
    assert has_kernels_for((10, 3), ["sm_100f"]) and not has_kernels_for((12, 0), ["sm_100f"])
    assert not has_kernels_for((9, 0), ["gfx90a", "gfx942", ""])
    assert not has_kernels_for((9, 0), [])


def emulate_gpu(monkeypatch, capability=(9, 0), name="NVIDIA H200", arch_list=CU113, version="1.11.0+cu113"):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: name)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: list(arch_list))
    monkeypatch.setattr(torch, "__version__", version)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    selected = []
    monkeypatch.setattr(torch.cuda, "set_device", selected.append)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: selected[-1])
    return selected


@pytest.mark.parametrize("requested", ["auto", "cuda"])
def test_h200_on_torch_111_is_refused_naming_gpu_capability_and_the_modern_image(monkeypatch, requested):
    selected = emulate_gpu(monkeypatch)
    with pytest.raises(ValueError) as info:
        pick_device(requested, 0)
    message = str(info.value)
    assert "\n" not in message
    for part in ("NVIDIA H200", "compute capability 9.0 (sm_90)", "torch 1.11.0+cu113", " ".join(CU113),
                 "make docker-build STACK=modern", "hmkd:%s-modern" % __version__, "make setup STACK=modern"):
        assert part in message, part
    assert not selected  # refused before the device is touched


def test_a_future_gpu_on_the_modern_stack_names_the_pin_to_raise(monkeypatch):
    emulate_gpu(monkeypatch, capability=(7, 5), name="Tesla T4", arch_list=["sm_80", "sm_90"], version="2.14.1")
    with pytest.raises(ValueError, match=r"Tesla T4 .*7\.5 \(sm_75\).*torch 2\.14\.1.*requirements/modern\.txt"):
        pick_device("auto", 0)


def test_supported_gpus_and_the_cpu_are_picked(monkeypatch):
    selected = emulate_gpu(monkeypatch, capability=(8, 0), name="NVIDIA A100")
    assert pick_device("auto", 0) == torch.device("cuda", 0) and selected == [0]
    emulate_gpu(monkeypatch, capability=(9, 0), arch_list=MODERN, version="2.14.1")
    assert pick_device("cuda", 0) == torch.device("cuda", 0)
    assert pick_device("cpu", 0) == torch.device("cpu")  # the CPU needs no kernel check


def test_no_arch_list_is_no_verdict(monkeypatch):
    """A build that lists nothing (or ROCm's gfx names) cannot be judged by this rule: the device is used."""
    emulate_gpu(monkeypatch, arch_list=[])
    assert pick_device("auto", 0).type == "cuda"
    emulate_gpu(monkeypatch, arch_list=["gfx90a"])
    monkeypatch.setattr(torch.version, "hip", "6.0", raising=False)
    assert pick_device("auto", 0).type == "cuda"
    assert distributed.check_gpu_kernels(0) is None


_EMULATED_H200 = """
import sys
import hmkd.cli.main, hmkd.engine.trainer  # their imports (timm, torchvision) see the real torch
import torch
torch.cuda.is_available = lambda: True
torch.cuda.device_count = lambda: 1
torch.cuda.get_device_capability = lambda index=None: (9, 0)
torch.cuda.get_device_name = lambda index=None: "NVIDIA H200"
torch.cuda.get_arch_list = lambda: %r
torch.__version__ = "1.11.0+cu113"
sys.exit(hmkd.cli.main.main(sys.argv[1:]))
""" % CU113


def test_the_refusal_reaches_the_user_as_one_line(tmp_path, write_config):
    """`hmkd train` on an H200 with torch 1.11's wheels: exit status 2 and one line, no traceback, no CUDA error."""
    config = write_config(train={"device": "auto"})
    result = subprocess.run([sys.executable, "-c", _EMULATED_H200, "train", config, "--run-dir",
                             str(tmp_path / "run")], capture_output=True, text=True, timeout=300, env=cli_env(),
                            cwd=REPO)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hmkd train: error: NVIDIA H200 (GPU 0) has compute capability 9.0 (sm_90), but "
                               "torch 1.11.0+cu113 has kernels for sm_37 ")
    assert "make docker-build STACK=modern" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_collective_timeout_comes_from_the_environment():
    from hmkd.engine.distributed import COLLECTIVE_TIMEOUT_ENV, DEFAULT_COLLECTIVE_TIMEOUT_S, collective_timeout

    assert collective_timeout({}).total_seconds() == DEFAULT_COLLECTIVE_TIMEOUT_S
    assert collective_timeout({COLLECTIVE_TIMEOUT_ENV: "2.5"}).total_seconds() == 2.5
    for bad in ("0", "-3", "soon"):
        with pytest.raises(ValueError, match="HMKD_COLLECTIVE_TIMEOUT_S=%r: the collective timeout must be" % bad):
            collective_timeout({COLLECTIVE_TIMEOUT_ENV: bad})


PEER = r"""
import json, os, sys, time
import torch
import torch.distributed as dist
from hmkd.engine.distributed import collective_failure, init_distributed, peer_lost, shutdown_distributed

rank, mode = int(os.environ["RANK"]), sys.argv[1]
env = init_distributed("cpu")
dist.all_reduce(torch.ones(1))
if rank == 1:
    if mode == "die":
        os._exit(9)
    time.sleep(30)  # hung: rank 0's next collective must give up after the timeout
    os._exit(0)
t0 = time.time()
try:
    dist.all_reduce(torch.ones(1))
    print(json.dumps({"error": None}))
except RuntimeError as exc:
    print(json.dumps({"collective": collective_failure(exc), "seconds": time.time() - t0,
                      "line": str(peer_lost(exc))}), flush=True)
# as a stage does after the failure (hmkd.engine.stage): the broken group is torn down before the interpreter ends,
# otherwise torch 2's gloo threads may still be waiting on the hung peer at exit and abort the process
shutdown_distributed()
"""


@pytest.mark.parametrize("mode", ["die", "hang"])
def test_a_lost_peer_fails_the_collective_within_the_timeout(tmp_path, mode):
    """Two real gloo processes (torchrun's variables): a dead peer fails the next all-reduce at once, a hung one after
    HMKD_COLLECTIVE_TIMEOUT_S; both are told apart from code errors and said in one line."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "peer.py"
    script.write_text(PEER)
    base = cli_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", HMKD_COLLECTIVE_TIMEOUT_S="3")
    procs = [subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=dict(base, RANK=str(r), LOCAL_RANK=str(r)), cwd=REPO)
             for r in (0, 1)]
    out, err = procs[0].communicate(timeout=120)
    procs[1].kill()
    procs[1].wait()
    assert procs[0].returncode == 0, err
    got = __import__("json").loads(out.strip().splitlines()[-1])
    assert got["collective"] is True
    assert got["seconds"] < 2 if mode == "die" else 2.5 < got["seconds"] < 20
    assert got["line"].startswith("a collective failed on rank 0 on ") and "\n" not in got["line"]
    assert "HMKD_COLLECTIVE_TIMEOUT_S" in got["line"]


def test_code_errors_are_not_collective_failures():
    from hmkd.engine.distributed import collective_failure

    assert not collective_failure(RuntimeError("CUDA out of memory"))
    assert not collective_failure(ValueError("Timed out waiting"))  # not a RuntimeError: not from a backend


ORDERED = r"""
import json, os
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from hmkd.engine.distributed import init_distributed, rank_ordered_mean

env = init_distributed("cpu")
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
ddp = DistributedDataParallel(model, bucket_cap_mb=1e-5)  # several buckets
ddp.register_comm_hook(None, rank_ordered_mean)
torch.manual_seed(1 + env.rank)
x = torch.randn(4, 7) * (10.0 ** env.rank)  # magnitudes apart, so the order of a sum shows in its rounding
ddp(x).pow(2).sum().backward()
synced = [p.grad.clone() for p in model.parameters()]
model.zero_grad()
model(x).pow(2).sum().backward()  # this rank's own gradients, without DDP
mine = [p.grad.clone() for p in model.parameters()]
every = [[torch.empty_like(g) for _ in range(env.world_size)] for g in mine]
for parts, g in zip(every, mine):
    dist.all_gather(parts, g)
expected = []
for parts in every:
    total = parts[0].clone()
    for part in parts[1:]:
        total += part
    expected.append(total / env.world_size)
print(json.dumps({"bitwise": all(torch.equal(a, b) for a, b in zip(synced, expected))}))
"""


def test_rank_ordered_mean_is_the_mean_summed_in_rank_order(tmp_path):
    """The deterministic DDP hook on 3 real gloo processes gives exactly ((g0 + g1) + g2) / 3 on every rank."""
    import json
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "ordered.py"
    script.write_text(ORDERED)
    base = cli_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="3")
    procs = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(base, RANK=str(r), LOCAL_RANK=str(r)), cwd=REPO) for r in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, err[-2000:]
        assert json.loads(out.strip().splitlines()[-1]) == {"bitwise": True}
