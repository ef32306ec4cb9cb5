"""tools/docker/smoke.py (make docker-smoke): one-line errors without an engine or an image, run by path as make
runs it too, the output checks, and a smoke pipeline that the CLI of this checkout accepts. The real container run
is CI's (tools/docker/ci.sh).

Usage: pytest tests/tools/test_docker_smoke.py
"""
import json
import os
import shlex
import socketserver
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler

import pytest
from modes import umask

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Engine(BaseHTTPRequestHandler):
    """The few answers of an engine that holds no image (API version, ping, image lookup)."""

    def do_GET(self):
        if self.path.endswith("/version"):
            self._send(200, {"ApiVersion": "1.41", "MinAPIVersion": "1.12", "Version": "20.10.24"})
        elif self.path.endswith("/_ping"):
            self._send(200, "OK")
        elif "/images/" in self.path:
            self._send(404, {"message": "No such image: %s" % self.path.split("/images/")[1]})
        else:
            self._send(404, {"message": "page not found"})

    do_HEAD = do_GET

    def _send(self, code, body):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Api-Version", "1.41")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def address_string(self):
        return "unix"

    def log_message(self, *args):
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def empty_engine(tmp_path, monkeypatch):
    sock = str(tmp_path / "engine.sock")
    server = _UnixServer(sock, _Engine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("DOCKER_HOST", "unix://" + sock)
    yield sock
    server.shutdown()
    server.server_close()


def test_unreachable_engine_is_one_line_naming_the_address(docker_smoke, tmp_path, monkeypatch, capsys):
    pytest.importorskip("docker")
    monkeypatch.setenv("DOCKER_HOST", "unix://%s/nothing.sock" % tmp_path)
    code = docker_smoke.main(["--shared", str(tmp_path / "out"), "--gpus", "none"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("docker-smoke: error: no Docker engine reachable at unix://%s/nothing.sock" % tmp_path)
    assert not (tmp_path / "out").exists()


def test_missing_image_names_make_docker_build(docker_smoke, tmp_path, empty_engine, capsys):
    pytest.importorskip("docker")
    code = docker_smoke.main(["--image", "hmkd:nope", "--shared", str(tmp_path / "out"), "--gpus", "none"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "image hmkd:nope not found" in err and "make docker-build" in err
    assert not (tmp_path / "out").exists()


def test_run_by_path_as_make_does(tmp_path):
    """`$(DOCKER_PY) tools/docker/smoke.py ...`: the script imports hmkd from the checkout and fails in one line."""
    pytest.importorskip("docker")
    env = dict(os.environ, DOCKER_HOST="unix://%s/nothing.sock" % tmp_path)
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "docker", "smoke.py"), "--image", "nosuch:1",
                           "--shared", str(tmp_path / "out")], cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr.startswith("docker-smoke: error: no Docker engine reachable at unix://") and \
        len(done.stderr.splitlines()) == 1, done.stderr


def test_missing_sdk_is_one_line(docker_smoke, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_docker(name, *args, **kwargs):
        if name == "docker":
            raise ImportError("no docker")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_docker)
    with pytest.raises(docker_smoke.SmokeError, match="pip install docker=="):
        docker_smoke.connect()


def test_gpu_requests(docker_smoke):
    pytest.importorskip("docker")
    assert docker_smoke.device_requests("none") == []
    (req,) = docker_smoke.device_requests("2")
    assert req["Count"] == 2 and req["Capabilities"] == [["gpu"]]
    assert docker_smoke.device_requests("all")[0]["Count"] == -1


def test_user_parsing(docker_smoke):
    assert docker_smoke.parse_user(None) == (os.getuid(), os.getgid())
    assert docker_smoke.parse_user("1234:55") == (1234, 55)
    assert docker_smoke.parse_user("1234") == (1234, 1234)
    with pytest.raises(docker_smoke.SmokeError):
        docker_smoke.parse_user("alice")


def _stage(root, name, done=True, miou=0.5, config=True, report=False):
    with umask(0o022):  # what Docker gives the container's processes: files 0644, folders 0755
        _write_stage(root / name, done, miou, config, report)


def _write_stage(path, done, miou, config, report):
    (path / "checkpoints").mkdir(parents=True)
    (path / "checkpoints" / "config.yaml").write_text("not a stage\n")
    (path / "launcher.json").write_text("{}")
    if config:
        (path / "config.yaml").write_text("model: {}\n")
    if miou is not None:
        (path / "eval.json").write_text(json.dumps({"mIoU": miou}))
    if report:
        (path / "report.json").write_text("[]")
        (path / "report.md").write_text("| run |\n")
    if done:
        (path / "DONE").write_text("")


def test_output_checks(docker_smoke, tmp_path):
    _stage(tmp_path, "smoke/teacher")
    _stage(tmp_path, "smoke/student", done=False, miou=None)
    _stage(tmp_path, "smoke/eval", config=False, miou=None, report=True)
    _stage(tmp_path, "smoke/eval/teacher", done=False, miou=None)  # inside a stage: not a stage of its own
    found = docker_smoke.find_stages(str(tmp_path))
    assert found == [str(tmp_path / "smoke" / n) for n in ("eval", "student", "teacher")]
    rows, problems = docker_smoke.check_outputs(str(tmp_path), os.getuid(), os.getgid())
    assert [(r["stage"], r["done"], r["miou"], r["report"]) for r in rows] == [
        ("smoke/eval", True, None, True), ("smoke/student", False, None, False), ("smoke/teacher", True, 0.5, False)]
    assert problems == ["smoke/student has no DONE marker", "smoke/student has no eval.json with mIoU"]
    _, problems = docker_smoke.check_outputs(str(tmp_path), os.getuid() + 1, os.getgid())
    assert len(problems) == 3 and "do not belong to %d:%d" % (os.getuid() + 1, os.getgid()) in problems[-1]
    (tmp_path / "smoke/eval/report.json").unlink()
    assert "smoke/eval has neither eval.json nor report.json" in docker_smoke.check_outputs(
        str(tmp_path), os.getuid(), os.getgid())[1]
    assert docker_smoke.check_outputs(str(tmp_path / "smoke/none"), 0, 0)[1][0].startswith("no stage directory")


def test_outputs_other_users_cannot_read_are_a_problem(docker_smoke, tmp_path):
    """The host user reads what uid 4242 wrote in the container: a file 0600 or a folder 0700 there fails the smoke."""
    _stage(tmp_path, "smoke/teacher")
    assert docker_smoke.check_outputs(str(tmp_path), os.getuid(), os.getgid())[1] == []
    os.chmod(str(tmp_path / "smoke/teacher/eval.json"), 0o600)  # what mkstemp and a rename left before
    os.chmod(str(tmp_path / "smoke/teacher/checkpoints"), 0o700)
    assert docker_smoke.unreadable_paths(str(tmp_path)) == ["smoke/teacher/checkpoints (0700)",
                                                           "smoke/teacher/eval.json (0600)"]
    assert docker_smoke.check_outputs(str(tmp_path), os.getuid(), os.getgid())[1] == [
        "2 paths cannot be read by users other than their owner, e.g. smoke/teacher/checkpoints (0700), "
        "smoke/teacher/eval.json (0600): files must be 0644 and folders 0755 under the container's umask 022 (are they "
        "written through hmkd.atomic?)"]


def test_seeded_stages_are_checked_per_run(docker_smoke, tmp_path):
    """A stage with seeds keeps launcher.json beside its seed_* run directories: each run gets its row."""
    stage = tmp_path / "exp" / "teacher"
    _stage(tmp_path, "exp/teacher/seed_0")
    _stage(tmp_path, "exp/teacher/seed_1", done=False)
    (stage / "launcher.json").write_text("{}")
    assert docker_smoke.find_stages(str(tmp_path)) == [str(stage)]
    rows, problems = docker_smoke.check_outputs(str(tmp_path), os.getuid(), os.getgid())
    assert [(r["stage"], r["done"], r["miou"]) for r in rows] == [
        ("exp/teacher/seed_0", True, 0.5), ("exp/teacher/seed_1", False, 0.5)]
    assert problems == ["exp/teacher/seed_1 has no DONE marker"]


def test_smoke_commands_are_accepted_by_this_cli_and_spec(docker_smoke):
    """The pipeline constant parses with the hmkd CLI, and its spec with its --set values loads, rooted on the mount."""
    from hmkd.cli.main import build_parser
    from hmkd.launcher.spec import load_spec

    parser = build_parser()
    parsed = []
    for argv in docker_smoke.SMOKE_COMMANDS:
        args, extra = parser.parse_known_args(list(argv))
        assert not extra, argv
        parsed.append(args)
    assert [a.command for a in parsed] == ["submit", "predict"]
    args = parsed[0]
    assert args.local
    spec = load_spec(os.path.join(ROOT, args.spec), args.set)
    assert spec.root == docker_smoke.SHARED
    trained = [s for s in spec.stages if s.kind in ("train", "distill")]
    assert trained and all("schedule.max_iters=20" in s.overrides for s in trained)
    assert any(s.kind in ("eval", "compare") for s in spec.stages)  # the evaluating stage (renamed compare)
    predict = parsed[1]   # the distilled student of that spec, on the pictures its run wrote, out on the mount too
    distilled = [s.name for s in spec.stages if s.kind == "distill"]
    assert predict.model == "%s/%s/%s" % (spec.root, spec.experiment, distilled[0])
    assert predict.sources == [predict.model + "/plots/predictions"]
    assert predict.out.startswith(docker_smoke.SHARED + "/")


def test_prediction_checks(docker_smoke, tmp_path):
    pictures = tmp_path / docker_smoke.PREDICT_INPUTS
    assert docker_smoke.check_predictions(str(tmp_path)) == [
        "hmkd predict had no input: %s holds no PNG" % docker_smoke.PREDICT_INPUTS]
    pictures.mkdir(parents=True)
    for name in ("a.png", "b.png"):
        (pictures / name).write_bytes(b"png")
        for kind in ("palette", "overlay"):
            os.makedirs(str(tmp_path / docker_smoke.PREDICT_OUT / kind), exist_ok=True)
            (tmp_path / docker_smoke.PREDICT_OUT / kind / name).write_bytes(b"png")
    assert docker_smoke.check_predictions(str(tmp_path)) == []
    (tmp_path / docker_smoke.PREDICT_OUT / "overlay" / "b.png").unlink()
    assert docker_smoke.check_predictions(str(tmp_path)) == [
        "hmkd predict wrote 1 of 2 overlay PNGs in predict/overlay"]


def test_explicit_commands_replace_the_pipeline(docker_smoke, tmp_path, monkeypatch, capsys):
    """--command is parsed with shell quoting; the run stops at the engine, before any folder is made."""
    pytest.importorskip("docker")
    monkeypatch.setenv("DOCKER_HOST", "unix://%s/nothing.sock" % tmp_path)
    args = docker_smoke.build_parser().parse_args(["--command", "train 'a b.yaml' x=1", "--command", "report r"])
    assert [shlex.split(c) for c in args.commands] == [["train", "a b.yaml", "x=1"], ["report", "r"]]
    assert docker_smoke.main(["--command", "report r", "--shared", str(tmp_path / "o")]) == 2
