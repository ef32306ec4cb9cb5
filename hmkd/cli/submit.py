"""hmkd submit SPEC [--local] [--dry-run] [--stages a,b] [--set key=value]: run a pipeline (jobs/*.yaml).

On Slurm each stage is one submitit job (one task per GPU) chained with afterok dependencies; --local runs the
stages one after another on this machine; --dry-run prints the sbatch scripts. Submitting again skips DONE stages
and leaves queued ones alone.
"""
import os
import sys

HELP = "submit a pipeline spec to Slurm (or run it locally)"


def add_arguments(parser) -> None:
    parser.add_argument("spec", help="pipeline spec, e.g. jobs/smoke.yaml")
    parser.add_argument("--local", action="store_true", help="run the stages here, one after another")
    parser.add_argument("--dry-run", action="store_true", help="print the sbatch scripts, submit nothing")
    parser.add_argument("--stages", default="", help="comma-separated subset of stages")
    parser.add_argument("--set", action="append", default=[], metavar="key=value",
                        help="override a spec value (e.g. root=/shared/runs, stages.hmkd.resources.nodes=1)")


def run(args) -> int:
    from hmkd.launcher.spec import check_data_roots, load_spec
    from hmkd.launcher.submit import StageFailedError, dry_run, submit_local, submit_slurm
    from hmkd.rundir import RunDir

    spec = load_spec(args.spec, args.set)
    check_data_roots(spec)
    only = [s for s in args.stages.split(",") if s]
    if args.dry_run:
        print(dry_run(spec, only))
        return 0
    try:
        (submit_local if args.local else submit_slurm)(spec, only=only)
    except StageFailedError as exc:
        print("hmkd submit: %s" % exc, file=sys.stderr)
        return 1
    if args.local:
        for stage in spec.stages:
            report = RunDir(spec.stage_dir(stage.name)).report_md
            if stage.kind == "compare" and os.path.isfile(report):
                with open(report) as handle:
                    print("\n%s\n%s" % (report, handle.read()))
    return 0
