"""hmkd status SPEC: each stage's state (DONE markers + Slurm's view), training progress and log folder."""
import json

HELP = "show the state of a pipeline's stages"


def add_arguments(parser) -> None:
    parser.add_argument("spec")
    parser.add_argument("--set", action="append", default=[], metavar="key=value")
    parser.add_argument("--json", action="store_true")


def run(args) -> int:
    from hmkd.launcher.spec import load_spec
    from hmkd.launcher.submit import status

    rows = status(load_spec(args.spec, args.set))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("%-12s %-8s %-28s %-16s %s" % ("stage", "kind", "state", "jobs", "progress"))
    for row in rows:
        print("%-12s %-8s %-28s %-16s %s" % (row["stage"], row["kind"], row["state"], ",".join(row["job_ids"]) or "-",
                                            row["progress"]))
    return 0
