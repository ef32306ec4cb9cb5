"""The launcher on this machine (submitit's local executor): the whole chain, the report, safe resubmission, and
a pipeline root others can read (the modes open() and mkdir give under the umask)."""
import json
import os

import pytest
import yaml
from engine_config import tiny_config
from finished_run import write_finished_run
from modes import UMASKS, umask, wrong_modes
from runner import run_cli

from hmkd.launcher.spec import load_spec
from hmkd.launcher.submit import submit_local


def tiny_pipeline(tmp_path, seeds=None):
    teacher = tiny_config(model={"name": "segformer_tiny", "options": {}}, loss={"terms": {"ce": {"weight": 1.0}}})
    student = tiny_config()
    hmkd = tiny_config(teacher={"name": "segformer_tiny", "checkpoint": "set-by-inputs"},
                       loss={"terms": {"ce": {"weight": 1.0}, "aux_ce": {"weight": 0.4},
                                       "gla": {"weight": 1.0, "dim": 16, "patch_size": 2},
                                       "hfa": {"weight": 1.0}}})
    for name, cfg in (("teacher", teacher), ("student", student), ("hmkd", hmkd)):
        (tmp_path / ("%s.yaml" % name)).write_text(yaml.safe_dump(cfg))
    student_stage = {"name": "student", "kind": "train", "config": str(tmp_path / "student.yaml")}
    if seeds:
        student_stage["seeds"] = seeds
    spec = {"experiment": "tiny", "root": str(tmp_path / "runs"), "stages": [
        {"name": "teacher", "kind": "train", "config": str(tmp_path / "teacher.yaml")},
        student_stage,
        {"name": "hmkd", "kind": "distill", "config": str(tmp_path / "hmkd.yaml"),
         "inputs": {"teacher.checkpoint": "teacher"}},
        {"name": "eval", "kind": "eval", "compare": ["teacher", "student", "hmkd"]}]}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path), tmp_path / "runs" / "tiny"


def test_local_pipeline_runs_every_stage_and_reports(tmp_path):
    spec, root = tiny_pipeline(tmp_path, seeds=[0, 1])
    result = run_cli("submit", spec, "--local")
    assert result.returncode == 0, result.stderr[-2000:]
    for stage in ("teacher", "student/seed_0", "student/seed_1", "hmkd", "eval"):
        assert (root / stage / "DONE").is_file(), stage
    distilled = yaml.safe_load((root / "hmkd" / "config.yaml").read_text())
    assert distilled["teacher"]["checkpoint"] == str(root / "teacher" / "model.pth")
    report = json.loads((root / "eval" / "report.json").read_text())
    entries = {e["label"]: e for e in report["entries"]}
    assert set(entries) == {"teacher", "student", "hmkd"}
    assert entries["student"]["seeds"] == 2 and entries["student"]["mIoU_std"] is not None
    seeds = [r for r in report["runs"] if r["label"] == "student"]
    mean = sum(r["mIoU"] for r in seeds) / 2
    assert abs(entries["student"]["mIoU"] - mean) < 1e-12
    assert entries["hmkd"]["teacher"] == "segformer_tiny" and entries["teacher"]["params"] > 0
    assert (root / "eval" / "miou.png").is_file() and (root / "eval" / "per_class_iou.png").is_file()
    assert "| hmkd | deeplabv3_tiny | segformer_tiny |" in result.stdout  # the report table is printed
    # against the label-only student, paired by seed: hmkd ran once (train.seed 0), so one pair, no interval
    assert entries["hmkd"]["vs_baseline"]["baseline"] == "student" and entries["hmkd"]["vs_baseline"]["seeds"] == [0]
    assert "| hmkd | 1 | " in result.stdout and "| single seed: no interval |" in result.stdout
    # the distilled stage's diagnostics, from its own run files: loss terms, and CKA at the GLA and HFA stages
    diagnostics, cka = report["diagnostics"], json.loads((root / "hmkd" / "cka.json").read_text())
    assert {r["stage"] for r in diagnostics["loss_terms"] + diagnostics["cka"]} == {"hmkd"}
    assert [r["term"] for r in diagnostics["loss_terms"]] == ["aux_ce", "ce", "gla", "hfa", "total"]
    assert [(r["feature_stage"], r["start"], r["end"]) for r in diagnostics["cka"]] == [
        (key, cka["start"][key], cka["end"][key]) for key in ("stage1", "stage3")]
    assert (root / "eval" / "loss_terms.png").is_file() and "| hmkd | stage3 | hfa | 1 | 3 |" in result.stdout

    again = run_cli("submit", spec, "--local")
    assert again.returncode == 0 and again.stdout.count("skipped: DONE") == 4
    status = run_cli("status", spec, "--json")
    assert [r["state"] for r in json.loads(status.stdout)] == ["DONE"] * 4

    # eval.json has one schema whichever path wrote it: the trainer, `hmkd eval`, the compare stage
    evaluated = run_cli("eval", str(root / "hmkd" / "config.yaml"), "--checkpoint", str(root / "hmkd" / "model.pth"),
                        "--run-dir", str(tmp_path / "evaluated"))
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    written = (root / "hmkd" / "eval.json", root / "eval" / "hmkd" / "eval.json", tmp_path / "evaluated" / "eval.json")
    records = [json.loads(path.read_text()) for path in written]
    assert [sorted(r) for r in records[1:]] == [sorted(records[0])] * 2
    for key in ("mIoU", "confusion_matrix", "step", "train_seconds", "teacher", "loss_terms", "seed", "params",
                "flops"):
        assert records[1][key] == records[2][key] == records[0][key], key
    assert records[0]["checkpoint"] == str(root / "hmkd" / "model.pth") and records[0]["step"] == 12

    # `hmkd report` prints the pipeline report's table: the same rows, seeds aggregated
    table = run_cli("report", str(root / "teacher"), str(root / "student"), str(root / "hmkd"))
    assert table.returncode == 0, table.stderr[-2000:]
    pipeline = (root / "eval" / "report.md").read_text()
    for line in table.stdout.strip().splitlines():
        assert line in pipeline, line


def test_failing_stage_stops_the_chain_with_its_log(tmp_path):
    spec, root = tiny_pipeline(tmp_path)
    (tmp_path / "teacher.yaml").write_text(yaml.safe_dump(tiny_config(
        model={"name": "segformer_tiny", "options": {}}, loss={"terms": {"ce": {"weight": float("inf")}}})))
    result = run_cli("submit", spec, "--local")
    assert result.returncode != 0
    assert "stage teacher failed" in result.stderr and "_log.err" in result.stderr and "Traceback" not in result.stderr
    assert not (root / "hmkd").exists() or not (root / "hmkd" / "DONE").exists()
    assert not os.path.exists(root / "teacher" / "DONE")


@pytest.mark.parametrize("mask", UMASKS)
def test_a_pipeline_root_is_readable_as_the_umask_says(tmp_path, mask):
    """Everything the launcher, its jobs and the report stage publish under the experiment's root (stage folders,
    launcher.json, submitit's files, the evaluation's eval.json, report.md/json, charts): 0666 / 0777 less the
    umask, so a teammate's `hmkd status` and `hmkd report` read them. One job: the trained stage is already DONE."""
    root = tmp_path / "runs"
    (tmp_path / "student.yaml").write_text(yaml.safe_dump(tiny_config()))
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"experiment": "tiny", "root": str(root), "stages": [
        {"name": "student", "kind": "train", "config": str(tmp_path / "student.yaml")},
        {"name": "eval", "kind": "eval", "compare": ["student"], "overrides": ["data.num_val=1"]}]}, sort_keys=False))
    with umask(mask):
        write_finished_run(root / "tiny" / "student", "segformer_tiny", ["road", "car"])
        submit_local(load_spec(str(spec)))  # `hmkd submit --local` less its own start-up; the job is a process
    assert (root / "tiny" / "eval" / "report.md").is_file() and (root / "tiny" / "eval" / "launcher.json").is_file()
    assert wrong_modes(root, mask) == {}
