"""The report's diagnostics: the distilled stages' loss terms (first and last window, ratio) and teacher-student
CKA (start, end, change), means over seeds computed here straight from the runs' metrics.jsonl and cka.json."""
import json
import logging
import os
import random

import pytest

from hmkd.cli.main import main
from hmkd.evaluation.record import EvalRecord
from hmkd.reporting.report import write_report
from hmkd.rundir import RunDir


def write_run(path, seed, teacher, terms, cka=None):
    """A finished run's files: eval.json, metrics.jsonl (steps 5..20 every 5, a validation line between) and
    cka.json; values drawn at random, so the test's expectations can only come from reading the files."""
    rng = random.Random(seed * 7 + len(terms))
    run = RunDir(str(path))
    os.makedirs(run.path)
    with open(run.metrics, "w") as handle:
        for step in (1, 20):   # the trainer's gradient-share records (diagnostic steps), gla tiny
            norms = {t: rng.uniform(0.001, 0.005) if t == "gla" else rng.uniform(0.5, 2.0) for t in terms}
            line = {"grad_norm/" + t: norms[t] for t in terms}
            line["step"] = step
            line.update({"grad_share/" + t: norms[t] / sum(norms.values()) for t in terms})
            handle.write(json.dumps(line) + "\n")
        for step in (5, 10, 15, 20):
            line = {"step": step, "lr": 0.01, "images_per_s": 3.0}
            line.update({"loss/" + t: rng.uniform(0.1, 2.0) for t in terms})
            line["loss/total"] = sum(line["loss/" + t] for t in terms)
            handle.write(json.dumps(line) + "\n")
            if step == 10:
                handle.write(json.dumps({"step": 10, "val/mIoU": 0.3, "val/aAcc": 0.5}) + "\n")
    if cka is not None:
        with open(run.cka, "w") as handle:
            json.dump(dict(cka, images=3, terms=sorted(n for v in cka["stages"].values() for n in v)), handle)
    EvalRecord(mIoU=0.5, aAcc=0.6, mAcc=0.5, num_images=3, num_pixels=9, per_class={"a": {"iou": 0.5, "acc": 0.5}},
               confusion_matrix=[[1]], model="deeplabv3_tiny", teacher=teacher, loss_terms=sorted(terms),
               seed=seed).write(run.eval_json)
    return run


def cka_file(rng):
    return {"stages": {"stage1": ["gla"], "stage3": ["hfa"]}, "steps": {"start": 0, "end": 20},
            "start": {"stage1": rng.random(), "stage3": rng.random()},
            "end": {"stage1": rng.random(), "stage3": rng.random()}}


@pytest.fixture()
def stages(tmp_path):
    rng = random.Random(5)
    student = [write_run(tmp_path / "student" / ("seed_%d" % s), s, None, ["ce"]) for s in (0, 1)]
    hmkd = [write_run(tmp_path / "hmkd" / ("seed_%d" % s), s, "segformer_tiny", ["ce", "gla", "hfa"], cka_file(rng))
            for s in (0, 1)]
    return student, hmkd


def lines_of(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle]


def mean(values):
    return sum(values) / len(values)


def test_term_and_cka_tables_hold_the_seed_means_of_the_run_files(tmp_path, stages):
    student, hmkd = stages
    rows = [(label, EvalRecord.read(run.eval_json)) for label, runs in (("student", student), ("hmkd", hmkd))
            for run in runs]
    trained = [("student", run) for run in student] + [("hmkd", run) for run in hmkd]
    report = RunDir(str(tmp_path / "report"))
    out = write_report(report, rows, trained=trained)
    text = open(report.report_md).read()
    assert text == out["markdown"] and "## Distillation diagnostics" in text

    train_lines = [[line for line in lines_of(run.metrics) if "loss/ce" in line] for run in hmkd]
    saved = json.load(open(report.report_json))["diagnostics"]
    assert [r["term"] for r in saved["loss_terms"]] == ["ce", "gla", "hfa", "total"]  # by name, the total last
    for row in saved["loss_terms"]:
        key = "loss/" + row["term"]
        first, last = mean([lines[0][key] for lines in train_lines]), mean([lines[-1][key] for lines in train_lines])
        assert row["stage"] == "hmkd" and row["seeds"] == 2
        assert (row["first"], row["last"]) == pytest.approx((first, last), rel=1e-12)
        assert row["ratio"] == pytest.approx(last / first, rel=1e-12)
        assert "| hmkd | %s | 2 | %.4g | %.4g | %.3f |" % (row["term"], first, last, last / first) in text
    assert not any(r["stage"] == "student" for r in saved["loss_terms"] + saved["cka"])  # no teacher: no rows

    share_lines = [[line for line in lines_of(run.metrics) if "grad_share/ce" in line] for run in hmkd]
    assert [r["term"] for r in saved["grad_shares"]] == ["ce", "gla", "hfa"]
    for row in saved["grad_shares"]:
        key = "grad_share/" + row["term"]
        first, last = mean([lines[0][key] for lines in share_lines]), mean([lines[-1][key] for lines in share_lines])
        assert (row["first_step"], row["last_step"], row["seeds"]) == (1, 20, 2)
        assert (row["first"], row["last"]) == pytest.approx((first, last), rel=1e-12)
        assert row["switched_off"] is (row["term"] == "gla")
        assert "| hmkd | %s | 2 | %.3g%% (1) | %.3g%% (20) | %s |" % (
            row["term"], 100 * first, 100 * last, "yes" if row["term"] == "gla" else "no") in text
    assert sum(r["first"] for r in saved["grad_shares"]) == pytest.approx(1.0)

    records = [json.load(open(run.cka)) for run in hmkd]
    assert [(r["feature_stage"], r["terms"]) for r in saved["cka"]] == [("stage1", ["gla"]), ("stage3", ["hfa"])]
    for row in saved["cka"]:
        key = row["feature_stage"]
        start, end = mean([r["start"][key] for r in records]), mean([r["end"][key] for r in records])
        assert (row["start"], row["end"], row["change"]) == pytest.approx((start, end, end - start), rel=1e-12)
        assert row["images"] == records[0]["images"] == 3
        assert "| hmkd | %s | %s | 2 | 3 | %.3f | %.3f | %+.3f |" % (key, "+".join(row["terms"]), start, end,
                                                                    end - start) in text
    assert open(report.term_chart, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_hmkd_report_prints_the_same_tables(tmp_path, stages, capsys):
    assert main(["report", str(tmp_path / "student"), str(tmp_path / "hmkd")]) == 0
    printed = capsys.readouterr().out
    report = RunDir(str(tmp_path / "report"))
    trained = [("student", run) for run in stages[0]] + [("hmkd", run) for run in stages[1]]
    rows = [(label, EvalRecord.read(run.eval_json)) for label, run in trained]
    expected = write_report(report, rows, trained=trained)["markdown"]
    diagnostics_part = expected.split("## Distillation diagnostics\n\n")[1].strip()
    assert printed.strip().endswith(diagnostics_part)


def test_runs_without_the_files_add_no_rows_and_a_damaged_cka_json_is_a_warning(tmp_path, stages, caplog):
    student, hmkd = stages
    os.remove(hmkd[0].cka)
    with open(hmkd[1].cka, "w") as handle:
        handle.write("{")
    bare = RunDir(str(tmp_path / "evaluated_only"))  # an evaluation-only stage: eval.json alone
    os.makedirs(bare.path)
    rows = [("hmkd", EvalRecord.read(run.eval_json)) for run in hmkd] + [("other", EvalRecord.read(hmkd[0].eval_json))]
    with caplog.at_level(logging.WARNING):
        out = write_report(RunDir(str(tmp_path / "report")), rows,
                           trained=[("hmkd", run) for run in hmkd] + [("other", bare)])
    assert out["diagnostics"]["cka"] == [] and "its CKA rows are left out" in caplog.text
    assert {r["stage"] for r in out["diagnostics"]["loss_terms"]} == {"hmkd"}
    plain = write_report(RunDir(str(tmp_path / "plain")), rows)  # no training runs given: the table alone
    assert "Distillation diagnostics" not in plain["markdown"]
    assert not os.path.exists(RunDir(str(tmp_path / "plain")).term_chart)
