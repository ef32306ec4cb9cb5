"""Pipeline specs: checked before anything is submitted; errors name the stage and the key."""
import pytest
import yaml

from hmkd.launcher.spec import load_spec

CONFIG = "configs/synthetic/deeplabv3_student.yaml"


def write_spec(tmp_path, stages, **top):
    spec = dict({"experiment": "exp", "root": str(tmp_path / "runs"), "stages": stages}, **top)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


def stage(name, **fields):
    return dict({"name": name, "kind": "train", "config": CONFIG}, **fields)


def test_order_follows_dependencies_and_inputs(tmp_path, monkeypatch):
    monkeypatch.chdir(__import__("runner").REPO)
    spec = load_spec(write_spec(tmp_path, [
        {"name": "eval", "kind": "eval", "compare": ["kd", "teacher"]},
        stage("kd", kind="distill", inputs={"teacher.checkpoint": "teacher"}),
        stage("teacher")]))
    assert [s.name for s in spec.ordered_stages()] == ["teacher", "kd", "eval"]
    assert spec.upstream(spec.stage("eval")) == ["kd", "teacher"]
    assert spec.stage_dir("kd") == str(tmp_path / "runs" / "exp" / "kd")
    assert spec.stage("eval").kind == "compare"  # the old name of the comparing kind is still read


def test_stage_overrides_reach_jobs_as_data(tmp_path, monkeypatch):
    monkeypatch.chdir(__import__("runner").REPO)
    from hmkd.launcher.submit import jobs

    spec = load_spec(write_spec(tmp_path, [
        stage("teacher", overrides=["optim.lr=0.5", "train.batch_size=3"], seeds=[4, 7]),
        stage("kd", kind="distill", config="configs/synthetic/hmkd_segformer_b0_to_deeplabv3_r18.yaml",
              inputs={"teacher.checkpoint": "teacher/seed_4/model.pth"}),
        {"name": "cmp", "kind": "compare", "compare": ["teacher", "kd"], "overrides": ["eval.flip=true"],
         "baseline": "teacher"}]))
    assert spec.stage("teacher").override_values == {"optim": {"lr": 0.5}, "train": {"batch_size": 3}}
    trained = jobs(spec, spec.stage("teacher"))
    assert [j.config["train"]["seed"] for j in trained] == [4, 7]
    assert [j.run_dir for j in trained] == [spec.stage_dir("teacher") + "/seed_%d" % s for s in (4, 7)]
    assert trained[0].config["optim"]["lr"] == 0.5 and trained[1].config["train"]["batch_size"] == 3
    (distill,) = jobs(spec, spec.stage("kd"))
    assert distill.config["teacher"]["checkpoint"] == spec.stage_dir("teacher") + "/seed_4/model.pth"
    (compare,) = jobs(spec, spec.stage("cmp"))
    assert type(compare).__name__ == "CompareJob" and compare.overrides == {"eval": {"flip": True}}
    assert compare.compare == [("teacher", spec.stage_dir("teacher")), ("kd", spec.stage_dir("kd"))]
    assert compare.baseline == "teacher"


@pytest.mark.parametrize("stages,expected", [
    ([stage("a"), stage("a")], "stage names must be unique; repeated: a"),
    ([stage("a", depends_on=["b"])], "stages.a.depends_on names unknown stage 'b'"),
    ([stage("a", depends_on=["b"]), stage("b", depends_on=["a"])], "cycle: a -> b -> a"),
    ([stage("a", kind="export")], "stages.a.kind must be one of 'train', 'distill', 'compare'"),
    ([stage("a", config="configs/nope.yaml")], "stages.a.config configs/nope.yaml does not exist"),
    ([stage("a", resources={"time": "90 minutes"})], "stages.a.resources.time must look like HH:MM"),
    ([stage("a", resources={"time": "00:02:00"})], "stages.a.resources.time must be at least 00:03:00, got '00:02:00'"),
    ([stage("a", resources={"nodes": 0})], "stages.a.resources.nodes must be >= 1, got 0"),
    ([stage("a", resources={"mem_gb": 0})], "stages.a.resources.mem_gb must be > 0, got 0.0"),
    ([stage("a", resources={"gpu_per_node": 4})], "unknown config key 'stages.a.resources.gpu_per_node'; "
                                                  "did you mean 'stages.a.resources.gpus_per_node'"),
    ([stage("a", overrides=["optim.lr"])], "stages.a.overrides: override 'optim.lr' must look like key.sub=value"),
    ([{"name": "e", "kind": "eval"}], "stages.e.compare must list the stages"),
    ([stage("a"), {"name": "e", "kind": "compare", "compare": ["a"], "baseline": "b"}],
     "stages.e.baseline 'b' must be one of the compared stages (a)"),
    ([stage("a")], "environment.image is required for kind=pyxis"),
    ([stage("a")], "distributed.timeout_s must be > 0, got 0.0"),
])
def test_errors_name_stage_and_key(tmp_path, monkeypatch, stages, expected):
    monkeypatch.chdir(__import__("runner").REPO)
    top = {"environment": {"kind": "pyxis"}} if "pyxis" in expected else {}
    if "timeout_s" in expected:
        top = {"distributed": {"timeout_s": 0}}
    with pytest.raises(ValueError) as err:
        load_spec(write_spec(tmp_path, stages, **top))
    assert expected in str(err.value) and "spec.yaml" in str(err.value)


def test_set_errors_address_the_stage_by_name(tmp_path, monkeypatch):
    """The path in the message is the one --set takes, said once."""
    monkeypatch.chdir(__import__("runner").REPO)
    path = write_spec(tmp_path, [stage("a"), stage("hmkd")])
    with pytest.raises(ValueError) as err:
        load_spec(path, ["stages.hmkd.resources.nodes=0"])
    assert str(err.value) == "%s: stages.hmkd.resources.nodes must be >= 1, got 0" % path


def test_set_overrides_top_level_and_stage_keys(tmp_path, monkeypatch):
    monkeypatch.chdir(__import__("runner").REPO)
    path = write_spec(tmp_path, [stage("a")])
    spec = load_spec(path, ["root=/shared/runs", "stages.a.resources.nodes=2", "stages.a.resources.time=2-00:00"])
    assert spec.root == "/shared/runs" and spec.stage("a").resources.nodes == 2
    assert spec.stage("a").resources.time_minutes == 2 * 1440
    with pytest.raises(ValueError, match="unknown stage 'b'"):
        load_spec(path, ["stages.b.resources.nodes=2"])


def test_distributed_settings_and_requeue_budget_reach_the_jobs(tmp_path, monkeypatch):
    """The collective timeout and NCCL's async error handling travel in each job's environment (the spec's nccl
    section has the last word); max_requeues travels with the job and decides --requeue / --no-requeue."""
    monkeypatch.chdir(__import__("runner").REPO)
    from hmkd.engine.distributed import COLLECTIVE_TIMEOUT_ENV
    from hmkd.launcher.submit import dry_run, jobs

    path = write_spec(tmp_path, [stage("a", resources={"nodes": 2, "max_requeues": 2}),
                                 stage("b", resources={"max_requeues": 0})],
                      distributed={"timeout_s": 45}, nccl={"NCCL_ASYNC_ERROR_HANDLING": "0"})
    spec = load_spec(path)
    (a,) = jobs(spec, spec.stage("a"))
    assert a.env[COLLECTIVE_TIMEOUT_ENV] == "45" and a.max_requeues == 2
    assert a.env["TORCH_NCCL_ASYNC_ERROR_HANDLING"] == "1" and a.env["NCCL_ASYNC_ERROR_HANDLING"] == "0"
    assert jobs(spec, spec.stage("b"))[0].max_requeues == 0
    scripts = dry_run(spec).split("### stage ")
    assert "#SBATCH --requeue\n" in scripts[1] and "#SBATCH --nodes=2" in scripts[1]
    assert "#SBATCH --no-requeue\n" in scripts[2] and "--requeue\n" not in scripts[2].replace("--no-requeue", "")
    default = load_spec(write_spec(tmp_path, [stage("a")]))
    assert COLLECTIVE_TIMEOUT_ENV not in jobs(default, default.stage("a"))[0].env  # the engine's default applies


def test_gpu_stage_has_one_task_per_gpu(tmp_path, monkeypatch):
    monkeypatch.chdir(__import__("runner").REPO)
    spec = load_spec(write_spec(tmp_path, [stage("a", resources={"nodes": 2, "gpus_per_node": 4})]))
    assert spec.stage("a").resources.tasks == 4


def test_shipped_specs_are_valid(monkeypatch):
    import glob
    import os

    from hmkd.launcher.submit import jobs

    repo = __import__("runner").REPO
    monkeypatch.chdir(repo)
    paths = sorted(glob.glob(os.path.join(repo, "jobs", "*.yaml")))
    assert any(p.endswith("smoke.yaml") for p in paths)
    for path in paths:
        spec = load_spec(path)
        for s in spec.ordered_stages():
            assert jobs(spec, s), (path, s.name)  # every stage's config resolves and checks


def test_without_srun_a_dry_run_prints_the_scripts_and_a_submission_is_one_line(tmp_path, monkeypatch, capsys):
    """A laptop without Slurm: --dry-run still shows what sbatch would get; a real submission says what to do."""
    from hmkd.cli.main import main

    monkeypatch.chdir(__import__("runner").REPO)
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm-here"))
    path = write_spec(tmp_path, [stage("a")])
    assert main(["submit", path, "--dry-run"]) == 0
    assert "#SBATCH --job-name=" in capsys.readouterr().out
    assert main(["submit", path]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hmkd submit: error: Slurm's srun is not on this machine's PATH")
    assert "--local" in err[0]
