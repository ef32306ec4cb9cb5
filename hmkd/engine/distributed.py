"""Process-group setup in one place: Slurm, torchrun or a single process; the device is chosen here, once.

Usage:
    env = init_distributed(device="auto")     # DistEnv(rank, world_size, local_rank, device, backend)
    ...
    shutdown_distributed()

torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) win when present; otherwise Slurm's
(SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, the first host of SLURM_JOB_NODELIST, a port derived from the job
id). A half-set environment (a rank without a world size, say) is refused rather than guessed. NCCL on GPUs,
gloo on CPUs. A GPU this torch build has no kernels for is refused here with one line naming the fix, before CUDA's
own "no kernel image is available" could surface from the first convolution (:func:`has_kernels_for`).

Every collective waits at most the collective timeout (``HMKD_COLLECTIVE_TIMEOUT_S``, which the launcher sets from a
spec's ``distributed.timeout_s``): a lost node then ends the job within that bound instead of leaving the other ranks
waiting for torch's 30 minutes. A failed collective becomes :class:`PeerLostError` (:func:`collective_failure`).
"""
import datetime
import os
import re
import socket
import subprocess
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.distributed as dist

from hmkd import __version__


class DistEnv(NamedTuple):
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: Optional[str]

    @property
    def is_main(self) -> bool:
        return self.rank == 0


COLLECTIVE_TIMEOUT_ENV = "HMKD_COLLECTIVE_TIMEOUT_S"
DEFAULT_COLLECTIVE_TIMEOUT_S = 600  # covers a checkpoint write to slow shared storage; well under torch's 30 min
# What gloo and NCCL say when a peer process died, a node stopped answering or a collective ran past its timeout.
_PEER_LOST_MARKERS = ("gloo/transport", "pair closure", "Connection closed by peer", "Connection reset by peer", "Timed out waiting",
                      "NCCL communicator was aborted", "collective operation timeout", "NCCL error", "Socket Timeout",
                      "waiting for clients", "connect() timed out")


class PeerLostError(RuntimeError):
    """A collective failed: another rank's process or node is gone (or hung past the collective timeout)."""


def collective_timeout(environ: Optional[Dict[str, str]] = None) -> datetime.timedelta:
    """The longest any collective may wait, from ``HMKD_COLLECTIVE_TIMEOUT_S`` (default 600 s)."""
    env = os.environ if environ is None else environ
    text = env.get(COLLECTIVE_TIMEOUT_ENV, "").strip()
    if not text:
        return datetime.timedelta(seconds=DEFAULT_COLLECTIVE_TIMEOUT_S)
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise ValueError("%s=%r: the collective timeout must be a positive number of seconds (distributed.timeout_s "
                         "in a pipeline spec)" % (COLLECTIVE_TIMEOUT_ENV, text))
    return datetime.timedelta(seconds=seconds)


def collective_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective's failure (torch 2's DistBackendError, or gloo's and NCCL's RuntimeErrors on
    torch 1.11) rather than an error of the training code."""
    backend_error = getattr(dist, "DistBackendError", None)
    if backend_error is not None and isinstance(exc, backend_error):
        return True
    return isinstance(exc, RuntimeError) and any(marker in str(exc) for marker in _PEER_LOST_MARKERS)


def peer_lost(exc: BaseException) -> PeerLostError:
    """``exc`` (a :func:`collective_failure`) as one line that says what happened and what comes next."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return PeerLostError("a collective failed on rank %s on %s (%s): a peer process or node is gone, or hung past the "
                         "collective timeout (%s); the run resumes from its latest checkpoint when started again"
                         % (os.environ.get("RANK", "0"), node_name(), first, COLLECTIVE_TIMEOUT_ENV))


def first_slurm_host(nodelist: str) -> str:
    """First host of a Slurm node list; scontrol expands ranges like ``node[01-04,07]`` when it is installed."""
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                             timeout=30, check=True).stdout.split()
        if out:
            return out[0]
    except (OSError, subprocess.SubprocessError):
        pass
    head = nodelist.split(",")[0]
    if "[" in head:
        prefix, rest = head.split("[", 1)
        head = prefix + rest.split(",")[0].split("-")[0].rstrip("]")
    return head


def read_launcher_env(environ: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Rank variables as torchrun names them, from torchrun's or Slurm's environment (empty: single process)."""
    env = os.environ if environ is None else environ
    torchrun_keys = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    present = [k for k in torchrun_keys if k in env]
    if present:
        missing = [k for k in torchrun_keys if k not in env]
        if missing:
            raise ValueError("distributed environment is half set: %s present but %s missing; set all of %s or none"
                             % (", ".join(present), ", ".join(missing), ", ".join(torchrun_keys)))
        return {k: env[k] for k in torchrun_keys}
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        for key in ("SLURM_NTASKS", "SLURM_LOCALID", "SLURM_JOB_NODELIST", "SLURM_JOB_ID"):
            if key not in env:
                raise ValueError("Slurm environment is half set: SLURM_PROCID present but %s missing" % key)
        port = env.get("MASTER_PORT") or str(20000 + int(env["SLURM_JOB_ID"]) % 20000)
        return {"RANK": env["SLURM_PROCID"], "WORLD_SIZE": env["SLURM_NTASKS"], "LOCAL_RANK": env["SLURM_LOCALID"],
                "MASTER_ADDR": env.get("MASTER_ADDR") or first_slurm_host(env["SLURM_JOB_NODELIST"]),
                "MASTER_PORT": port}
    return {}


_ARCH = re.compile(r"^(sm|compute)_(\d+)(\d)([af]?)$")  # sm_86, sm_90a, sm_100f, compute_120


def has_kernels_for(capability: Tuple[int, int], arch_list: Sequence[str]) -> bool:
    """Whether a torch build whose ``torch.cuda.get_arch_list()`` is ``arch_list`` can run on a device of compute
    ``capability`` (major, minor).

    Compiled code (SASS, ``sm_XY``) runs on devices of the same major version with minor >= Y (sm_80 on an 8.6 A10,
    never on a 9.0 H100); PTX (``compute_XY``) is compiled by the driver for any capability >= X.Y. Architecture-
    specific targets (``sm_90a``) run on X.Y only; family targets (``sm_100f``) follow the SASS rule. Names of other
    kinds (ROCm's ``gfx90a``) are not CUDA targets and never match.
    """
    major, minor = capability
    for name in arch_list:
        parsed = _ARCH.match(name)
        if not parsed:
            continue
        kind, arch_major, arch_minor, suffix = parsed.group(1), int(parsed.group(2)), int(parsed.group(3)), \
            parsed.group(4)
        if suffix == "a":
            ok = (major, minor) == (arch_major, arch_minor)
        elif kind == "sm" or suffix == "f":
            ok = major == arch_major and minor >= arch_minor
        else:
            ok = (major, minor) >= (arch_major, arch_minor)
        if ok:
            return True
    return False


def check_gpu_kernels(index: int) -> None:
    """Refuses (ValueError, one line) a visible GPU that this torch build has no kernels for: the legacy stack's
    torch 1.11+cu113 stops at sm_86, so on an H100/H200 (sm_90) its first convolution would fail with CUDA's "no
    kernel image is available for execution on the device" instead of saying what to use."""
    arch_list = torch.cuda.get_arch_list()
    if not arch_list or getattr(torch.version, "hip", None):
        return  # no list to judge by (or ROCm, whose targets are gfx names)
    major, minor = torch.cuda.get_device_capability(index)
    if has_kernels_for((major, minor), arch_list):
        return
    if int(torch.__version__.split(".")[0]) < 2:
        fix = ("use the modern stack: its image (make docker-build STACK=modern, hmkd:%s-modern) or its venv (make "
               "setup STACK=modern)" % __version__)
    else:
        fix = "use a torch build whose arch list has sm_%d%d (raise the torch pin in requirements/modern.txt)" % (
            major, minor)
    raise ValueError("%s (GPU %d) has compute capability %d.%d (sm_%d%d), but torch %s has kernels for %s only; %s; "
                     "or train.device=cpu" % (torch.cuda.get_device_name(index), index, major, minor, major, minor,
                                              torch.__version__, " ".join(arch_list), fix))


def pick_device(requested: str, local_rank: int) -> torch.device:
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError("train.device must be auto, cpu or cuda, got %r" % requested)
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device is cuda but no CUDA device is visible; use train.device=cpu or auto")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    index = local_rank % torch.cuda.device_count()
    check_gpu_kernels(index)  # before the first kernel launch, on "auto" too: a paper-size run must not fall to CPU
    torch.cuda.set_device(index)
    return torch.device("cuda", torch.cuda.current_device())


def init_distributed(device: str = "auto") -> DistEnv:
    launch = read_launcher_env()
    if not launch:
        return DistEnv(0, 1, 0, pick_device(device, 0), None)
    os.environ.update(launch)  # init_method env:// reads them
    rank, world, local = int(launch["RANK"]), int(launch["WORLD_SIZE"]), int(launch["LOCAL_RANK"])
    dev = pick_device(device, local)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world,
                                timeout=collective_timeout())
    return DistEnv(rank, world, local, dev, backend if world > 1 else None)


def rank_ordered_mean(state: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """A DDP communication hook: the mean of a gradient bucket, summed in rank order on every rank.

    DDP lays its buckets out again after the first step, and a ring all-reduce sums each element in an order that
    depends on where it lies in a bucket; with more than two ranks a resumed run (whose first step has the initial
    layout) then drifts from an uninterrupted one by rounding. Gathering every rank's bucket and adding them 0, 1,
    2, ... makes the sum independent of the layout, for the price of world-size times the bucket's memory; the
    trainer uses it under ``train.deterministic``."""
    tensor = bucket.buffer()
    gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    future = dist.all_gather(gathered, tensor, async_op=True).get_future()

    def mean(_: Any) -> torch.Tensor:
        total = gathered[0].clone()
        for part in gathered[1:]:
            total += part
        return total.div_(len(gathered))

    return future.then(mean)


def node_name() -> str:
    """The Slurm node this process runs on (its host name outside Slurm)."""
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()


def placement(env: DistEnv) -> Dict[str, Any]:
    """Where this rank runs: its Slurm node (or host), its device and the rendezvous it joined."""
    return {"rank": env.rank, "local_rank": env.local_rank, "node": node_name(), "hostname": socket.gethostname(), "pid": os.getpid(), "device": str(env.device),
            "master_addr": os.environ.get("MASTER_ADDR"), "master_port": os.environ.get("MASTER_PORT"),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "restart": int(os.environ.get("SLURM_RESTART_COUNT", 0))}


def describe_placement(ranks: List[Dict[str, Any]]) -> str:
    """``4 processes on n1 (ranks 0,1), n2 (ranks 2,3); rendezvous n1:23456``."""
    nodes: Dict[str, List[int]] = {}
    for row in ranks:
        nodes.setdefault(row["node"], []).append(row["rank"])
    where = ", ".join("%s (ranks %s)" % (node, ",".join(map(str, sorted(r)))) for node, r in nodes.items())
    rendezvous = "; rendezvous %s:%s" % (ranks[0]["master_addr"], ranks[0]["master_port"]) \
        if ranks and ranks[0]["master_addr"] else ""
    return "%d processes on %s%s" % (len(ranks), where, rendezvous)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
