"""`hmkd report` on stage directories: a run whose eval.json holds a NaN mIoU is "not compared", named in one line
under the table and in one warning; two runs of one seed in a stage are one error line naming both."""
import json

from runner import run_cli

from hmkd.cli.main import main
from hmkd.evaluation.record import EvalRecord


def write_eval(run_dir, miou, seed):
    """A run's eval.json as the trainer writes it; a NaN mIoU is then written the way a tool allowing NaN writes it."""
    run_dir.mkdir(parents=True)
    scores = {"iou": 0.5, "acc": 0.5}
    record = EvalRecord(mIoU=0.5, aAcc=0.9, mAcc=0.8, num_images=1, num_pixels=4, per_class={"road": scores},
                        confusion_matrix=[[4]], model="deeplabv3_tiny", seed=seed)
    record.write(str(run_dir / "eval.json"))
    data = json.loads((run_dir / "eval.json").read_text())
    data["mIoU"] = miou
    (run_dir / "eval.json").write_text(json.dumps(data))   # json writes NaN as the bare constant NaN


def test_a_nan_miou_is_one_line_in_the_report_and_one_warning(tmp_path):
    for stage, values in (("student", [0.70, float("nan")]), ("kd", [0.72, 0.71])):
        for seed, miou in enumerate(values):
            write_eval(tmp_path / stage / ("seed_%d" % seed), miou, seed)
    assert '"mIoU": NaN' in (tmp_path / "student" / "seed_1" / "eval.json").read_text()
    result = run_cli("report", str(tmp_path / "student"), str(tmp_path / "kd"), "--baseline", "student")
    assert result.returncode == 0, result.stderr
    nan_run = tmp_path / "student" / "seed_1"
    line = "not compared: %s (stage student): eval.json holds mIoU NaN; evaluate the run again (hmkd eval)" % nan_run
    assert result.stderr.splitlines() == ["UserWarning: " + line]
    lines = result.stdout.splitlines()
    assert lines[:6] == [
        "| stage | model | teacher | loss terms | seeds | mIoU (%) | aAcc (%) | mAcc (%) | params (M) | GFLOPs "
        "| train time |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        "| student | deeplabv3_tiny | - | - | 1 | 70.00 | 90.00 | 80.00 | - | - | - |",   # seed 1 left out
        "| kd | deeplabv3_tiny | - | - | 2 | 71.50 ± 0.71 | 90.00 ± 0.00 | 80.00 ± 0.00 | - | - | - |",
        "",
        line]
    assert "| kd | 1 | +2.00 | - | single seed: no interval |" in lines   # paired on seed 0 only
    assert "nan" not in result.stdout.replace(line, "").lower()   # no NaN mean, std or interval
    assert "worse" not in result.stdout and "better" not in result.stdout


def test_two_runs_of_one_seed_are_one_error_line(tmp_path, capsys):
    write_eval(tmp_path / "student" / "seed_0", 0.70, 0)
    write_eval(tmp_path / "student" / "seed_1", 0.72, 0)   # seed_1's config said train.seed 0 as well
    assert main(["report", str(tmp_path / "student")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "hmkd report: error: stage student has two runs with seed 0: %s and %s; give each run of a stage its own "
        "train.seed (the stage's seeds list sets them), or compare one of them"
        % (tmp_path / "student" / "seed_0", tmp_path / "student" / "seed_1")]
