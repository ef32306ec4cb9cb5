"""hmkd cancel SPEC: scancel the queued or running jobs of a pipeline (DONE stages are untouched)."""
HELP = "cancel a pipeline's queued and running jobs"


def add_arguments(parser) -> None:
    parser.add_argument("spec")
    parser.add_argument("--set", action="append", default=[], metavar="key=value")


def run(args) -> int:
    from hmkd.launcher.spec import load_spec
    from hmkd.launcher.submit import cancel

    cancelled = cancel(load_spec(args.spec, args.set))
    print("cancelled: %s" % (", ".join(cancelled) or "nothing was queued or running"))
    return 0
