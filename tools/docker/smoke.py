"""Run the smoke pipeline inside the hmkd image, with a host folder as shared storage, and check what it wrote.

Usage: python tools/docker/smoke.py [--image hmkd:0.1.0] [--shared runs/docker-smoke] [--gpus auto|all|none|N]
                                    [--user UID:GID] [--shm-size 2g] [--command "ARGS OF ONE hmkd RUN"]...
(`make docker-smoke`, in the project venv). A host-only tool, so it lives outside the runtime package: it drives
the engine through the docker SDK (a test pin), which the image neither has nor needs.

Each command (SMOKE_COMMANDS: jobs/smoke.yaml through `hmkd submit --local`, then `hmkd predict` with the distilled
student on the pictures its run left, as a user on their own images) runs in its own container through the
image's ENTRYPOINT (`hmkd`), as the invoking user (so the outputs belong to them), with GPUs passed through when the
host has them, without network. Every run directory it leaves must hold DONE and its results (eval.json, or an eval
stage's report.json), and every file must belong to that user and be readable by other users (Docker starts the
container's processes with umask 022, and hmkd gives each file the mode open() gives under it: 0644, folders 0755),
as a teammate on shared storage, or a job under another uid, reads them; the results table written inside the
container is printed at the end. The run-directory file names come from hmkd.rundir, where the layout is spelled once.
"""
import argparse
import glob
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if __name__ == "__main__" and ROOT not in sys.path:  # run by path: the checkout's hmkd, installed or not
    sys.path.insert(0, ROOT)

from hmkd import __version__  # noqa: E402
from hmkd.rundir import RunDir, found_runs  # noqa: E402

IMAGE = "hmkd:%s" % __version__
SHARED = "/shared"  # where the host folder is mounted in the container
# The smoke pipeline, defined here only: the argv of each `hmkd` run (one container each, in order). It is
# jobs/smoke.yaml through the launcher (what `make smoke` runs) with the root on the mount and short schedules.
_SHORT = "[schedule.max_iters=20, train.device=auto]"
# The predict run reads PNGs from the mount and writes beside them, as the invoking user: PREDICT_INPUTS and
# PREDICT_OUT are paths under the mount (SHARED), checked on the host by check_predictions.
PREDICT_INPUTS = "smoke/hmkd/plots/predictions"
PREDICT_OUT = "predict"
SMOKE_COMMANDS = (
    ("submit", "jobs/smoke.yaml", "--local", "--set", "root=" + SHARED, "--set", "stages.teacher.overrides=" + _SHORT,
     "--set", "stages.student.overrides=" + _SHORT, "--set", "stages.hmkd.overrides=" + _SHORT),
    ("predict", SHARED + "/" + PREDICT_INPUTS, "--model", SHARED + "/smoke/hmkd", "--out", SHARED + "/" + PREDICT_OUT,
     "--outputs", "palette,overlay"),
)
DOCKER_SDK_PIN = "docker==7.1.0"


class SmokeError(Exception):
    """A one-line failure; ``code`` 2 when the setup is missing (engine, image), 1 when the smoke itself failed."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect(timeout: int = 600):
    """A client for the engine DOCKER_HOST names (API version negotiated: engines as old as Debian's 20.10 work).

    ``timeout`` bounds each API call: on the vfs storage driver, creating a container copies the whole image, which
    takes minutes for the modern image's 6 GB (the run itself is bounded by --timeout)."""
    try:
        import docker
    except ImportError:
        raise SmokeError("the Docker SDK for Python is not installed: pip install %s" % DOCKER_SDK_PIN, 2)
    try:
        client = docker.from_env(version="auto", timeout=timeout)
        client.ping()
    except Exception as exc:  # DockerException, requests' ConnectionError, FileNotFoundError of a missing socket...
        raise SmokeError("no Docker engine reachable at %s (%s): start Docker, or point DOCKER_HOST at a running "
                         "engine (CI: tools/docker/dockerd.sh start)" % (engine_address(), _first_line(exc)), 2)
    return client


def get_image(client, image: str):
    import docker

    try:
        return client.images.get(image)
    except docker.errors.ImageNotFound:
        raise SmokeError("image %s not found in the engine at %s: build it with `make docker-build`"
                         % (image, engine_address()), 2)


def host_has_gpus() -> bool:
    """NVIDIA GPUs on this host: nvidia-smi lists one, or the driver's device nodes exist."""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 universal_newlines=True, timeout=30).stdout
            return "GPU" in out
        except (OSError, subprocess.SubprocessError):
            return False
    return bool(glob.glob("/dev/nvidia[0-9]*"))


def device_requests(gpus: str) -> List[Any]:
    """``--gpus`` as Docker's device requests: auto (all when the host has GPUs), all, none, or a count."""
    import docker

    if gpus == "none" or (gpus == "auto" and not host_has_gpus()):
        return []
    count = -1 if gpus in ("auto", "all") else int(gpus)
    return [docker.types.DeviceRequest(count=count, capabilities=[["gpu"]])]


def parse_user(text: Optional[str]) -> Tuple[int, int]:
    if not text:
        return os.getuid(), os.getgid()
    uid, _, gid = text.partition(":")
    try:
        return int(uid), int(gid or uid)
    except ValueError:
        raise SmokeError("--user must be numeric UID[:GID], got %r" % text, 2)


def run_container(client, image: str, argv: Sequence[str], *, host_dir: str, user: Tuple[int, int],
                  gpus: List[Any], shm_size: str, network: str, timeout: float, out=sys.stdout) -> Tuple[int, str]:
    """Run one ``hmkd`` argv to the end, streaming its output; returns (exit status, output)."""
    import docker

    kwargs = dict(command=list(argv), user="%d:%d" % user, shm_size=shm_size, network_mode=network,
                  volumes={host_dir: {"bind": SHARED, "mode": "rw"}},
                  environment={"HOME": "/tmp", "MPLCONFIGDIR": "/tmp/matplotlib"}, labels={"hmkd.smoke": "1"})
    if gpus:
        kwargs["device_requests"] = gpus
    def failed(exc):
        hint = ""
        if gpus and ("device driver" in str(exc) or "nvidia" in str(exc).lower()):
            hint = ": the engine cannot pass GPUs through (install nvidia-container-toolkit) or use --gpus none"
        return SmokeError("could not start `hmkd %s` in %s: %s%s" % (" ".join(argv), image, _api_error(exc), hint), 2)

    try:
        container = client.containers.create(image, **kwargs)
    except docker.errors.APIError as exc:
        raise failed(exc)
    chunks = []
    try:
        try:
            container.start()
        except docker.errors.APIError as exc:
            raise failed(exc)
        streamer = threading.Thread(target=_stream, args=(container, chunks, out), daemon=True)
        streamer.start()
        try:
            status = container.wait(timeout=timeout)["StatusCode"]
        except Exception:  # requests' ReadTimeout: the run took longer than --timeout
            container.kill()
            raise SmokeError("`hmkd %s` ran past %.0f s and was killed" % (" ".join(argv), timeout))
        streamer.join(30)
    finally:
        try:
            container.remove(force=True)
        except docker.errors.APIError:
            pass
    return int(status), "".join(chunks)


def _stream(container, chunks: List[str], out) -> None:
    """Copy a container's output to ``out`` as it comes (a thread: the wait beside it holds the time limit)."""
    for chunk in container.logs(stream=True, follow=True):
        text = chunk.decode("utf-8", "replace")
        chunks.append(text)
        out.write(text)
        out.flush()


def _is_stage(run: RunDir) -> bool:
    return any(os.path.isfile(path) for path in (run.done, run.config, run.launcher_state))


def find_stages(root: str) -> List[str]:
    """Stage directories under ``root``: those holding DONE, config.yaml or launcher.json (not their subfolders)."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        if _is_stage(RunDir(dirpath)):
            found.append(dirpath)
            dirnames[:] = []  # a stage's own subfolders (checkpoints, plots, an eval stage's runs) are not stages
        dirnames.sort()
    return sorted(found)


def check_run(run: RunDir, name: str) -> Tuple[Dict[str, Any], List[str]]:
    """A run's row and its problems: DONE, a training run's eval.json holding mIoU, an eval stage's report.json."""
    row = {"stage": name, "path": run.path, "done": run.is_done(), "miou": None,
           "report": os.path.isfile(run.report_md)}
    if os.path.isfile(run.eval_json):
        with open(run.eval_json) as handle:
            row["miou"] = json.load(handle).get("mIoU")
    done, eval_json, report_json = (os.path.basename(p) for p in (run.done, run.eval_json, run.report_json))
    problems = []
    trained = os.path.isfile(run.config)
    if not row["done"]:
        problems.append("%s has no %s marker" % (name, done))
    if trained and row["miou"] is None:
        problems.append("%s has no %s with mIoU" % (name, eval_json))
    if not trained and not os.path.isfile(run.report_json) and row["miou"] is None:
        problems.append("%s has neither %s nor %s" % (name, eval_json, report_json))
    return row, problems


def foreign_paths(root: str, uid: int, gid: int) -> List[str]:
    """Every path under ``root`` (itself included) not owned by uid:gid, as 'relpath (uid:gid)'."""
    foreign = []
    for dirpath, _, filenames in os.walk(root):
        for path in [dirpath] + [os.path.join(dirpath, f) for f in filenames]:
            st = os.lstat(path)
            if (st.st_uid, st.st_gid) != (uid, gid):
                foreign.append("%s (%d:%d)" % (os.path.relpath(path, root), st.st_uid, st.st_gid))
    return foreign


def unreadable_paths(root: str) -> List[str]:
    """Every path below ``root`` that users other than its owner cannot read (a folder: list and enter), as
    'relpath (mode)': under the container's umask 022 a file is 0644 and a folder 0755. ``root`` is the host's own."""
    unreadable = []
    for dirpath, dirnames, filenames in os.walk(root):
        for path in [os.path.join(dirpath, d) for d in dirnames] + [os.path.join(dirpath, f) for f in filenames]:
            mode = stat.S_IMODE(os.lstat(path).st_mode)
            need = 0o055 if os.path.isdir(path) else 0o044
            if not os.path.islink(path) and mode & need != need:
                unreadable.append("%s (%04o)" % (os.path.relpath(path, root), mode))
    return sorted(unreadable)


def check_predictions(root: str) -> List[str]:
    """Problems with what the predict command wrote under ``root``: one palette and one overlay PNG per input."""
    inputs = sorted(os.path.relpath(p, os.path.join(root, PREDICT_INPUTS))
                    for p in glob.glob(os.path.join(root, PREDICT_INPUTS, "*.png")))
    if not inputs:
        return ["hmkd predict had no input: %s holds no PNG" % PREDICT_INPUTS]
    problems = []
    for kind in ("palette", "overlay"):
        folder = os.path.join(root, PREDICT_OUT, kind)
        written = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        if written != inputs:
            problems.append("hmkd predict wrote %d of %d %s PNGs in %s/%s" % (
                len(set(written) & set(inputs)), len(inputs), kind, PREDICT_OUT, kind))
    return problems


def check_outputs(root: str, uid: int, gid: int) -> Tuple[List[Dict[str, Any]], List[str]]:
    """One row per run (a stage's seed_* folders, or the stage directory itself) and the problems found: every run
    DONE, training runs with an eval.json holding mIoU, an eval stage with its report.json, and every path under
    ``root`` owned by uid:gid and readable by other users."""
    rows, problems = [], []
    stages = find_stages(root)
    if not stages:
        problems.append("no stage directory under %s" % root)
    for stage in stages:
        for run in found_runs(stage):
            row, found = check_run(run, os.path.relpath(run.path, root))
            rows.append(row)
            problems.extend(found)
    foreign = foreign_paths(root, uid, gid)
    if foreign:
        problems.append("%d paths do not belong to %d:%d, e.g. %s" % (len(foreign), uid, gid, ", ".join(foreign[:3])))
    unreadable = unreadable_paths(root)
    if unreadable:
        problems.append("%d paths cannot be read by users other than their owner, e.g. %s: files must be 0644 and "
                        "folders 0755 under the container's umask 022 (are they written through hmkd.atomic?)"
                        % (len(unreadable), ", ".join(unreadable[:3])))
    return rows, problems


def _api_error(exc) -> str:
    """The engine's own message (an API error's str() starts with the request URL)."""
    return _first_line(getattr(exc, "explanation", None) or exc)


def _first_line(exc) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tools/docker/smoke.py", description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=IMAGE, help="image to run (default %(default)s)")
    parser.add_argument("--shared", default="runs/docker-smoke",
                        help="host folder for shared storage; each run gets a new subfolder mounted at " + SHARED)
    parser.add_argument("--gpus", default="auto", help="auto (all when the host has GPUs), all, none, or a count")
    parser.add_argument("--user", default=None, help="UID:GID to run as (default: the invoking user)")
    parser.add_argument("--shm-size", default="2g", help="/dev/shm size for data-loader workers (default 2g)")
    parser.add_argument("--network", default="none", help="container network (default none: the smoke needs none)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per command")
    parser.add_argument("--command", action="append", dest="commands", metavar="ARGS",
                        help="arguments of one hmkd run (repeatable; replaces the built-in smoke pipeline)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return smoke(args)
    except SmokeError as exc:
        print("docker-smoke: error: %s" % exc, file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("docker-smoke: interrupted", file=sys.stderr)
        return 130


def smoke(args) -> int:
    uid, gid = parse_user(args.user)
    if args.gpus not in ("auto", "all", "none") and not args.gpus.isdigit():
        raise SmokeError("--gpus must be auto, all, none or a count, got %r" % args.gpus, 2)
    client = connect()
    image = get_image(client, args.image)
    gpus = device_requests(args.gpus)
    commands = [shlex.split(c) for c in args.commands] if args.commands else [list(c) for c in SMOKE_COMMANDS]
    host_dir = os.path.join(os.path.abspath(args.shared), time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(host_dir)
    if (os.getuid(), os.getgid()) != (uid, gid):  # CI runs as root and checks as another user
        try:
            os.chown(host_dir, uid, gid)
        except OSError as exc:
            raise SmokeError("cannot give %s to %d:%d (%s): --user other than yourself needs root"
                             % (host_dir, uid, gid, exc.strerror), 2)
    labels = image.labels or {}
    print("docker-smoke: %s (hmkd %s, commit %s) as %d:%d, %s, %s -> %s" % (
        args.image, labels.get("org.opencontainers.image.version", "?"),
        labels.get("org.opencontainers.image.revision", "?")[:12], uid, gid,
        "GPUs passed through" if gpus else "CPU", SHARED, host_dir), flush=True)
    opts = dict(host_dir=host_dir, user=(uid, gid), gpus=gpus, shm_size=args.shm_size, network=args.network,
                timeout=args.timeout)
    started = time.time()
    for argv in commands:
        print("docker-smoke: $ hmkd %s" % " ".join(argv), flush=True)
        status, output = run_container(client, args.image, argv, **opts)
        if status != 0:
            tail = [line for line in output.splitlines() if line.strip()][-1:] or ["(no output)"]
            raise SmokeError("`hmkd %s` exited with %d in the container: %s" % (" ".join(argv), status, tail[0]))
    seconds = time.time() - started
    rows, problems = check_outputs(host_dir, uid, gid)
    if not args.commands:
        problems += check_predictions(host_dir)
    reports = [r for r in rows if r["report"]]
    if reports:  # the launcher's eval stage wrote the comparison inside the container
        for r in reports:
            report = RunDir(r["path"]).report_md
            with open(report) as handle:
                print("docker-smoke: report written inside the container (%s):\n%s"
                      % (os.path.relpath(report, host_dir), handle.read().rstrip()))
    elif not problems:
        print("docker-smoke: report from inside the container:", flush=True)
        stages = [os.path.join(SHARED, r["stage"]) for r in rows if r["miou"] is not None]
        status, _ = run_container(client, args.image, ["report"] + stages, **opts)
        if status != 0:
            problems.append("`hmkd report` exited with %d" % status)
    print("\n| stage | DONE | mIoU | owner |\n| --- | --- | ---: | --- |")
    for r in rows:
        print("| %s | %s | %s | %d:%d |" % (r["stage"], "yes" if r["done"] else "NO",
                                             "-" if r["miou"] is None else "%.2f" % (100 * r["miou"]), uid, gid))
    if problems:
        raise SmokeError("; ".join(problems))
    print("docker-smoke: passed: %d stages in %.0f s, outputs in %s belong to %d:%d"
          % (len(rows), seconds, host_dir, uid, gid))
    return 0


if __name__ == "__main__":
    sys.exit(main())
