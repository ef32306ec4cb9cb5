"""hmkd report RUN_DIR [RUN_DIR ...] [--json]: the results table of finished stages or runs, from their eval.json.

A RUN_DIR is a run directory, or a stage directory whose seed_* runs are aggregated (mean ± std) under its name;
the table is the one the pipeline's compare stage writes, followed by the distilled stages' diagnostics (loss terms
first and last, teacher-student CKA) from the runs' metrics.jsonl and cka.json. A run whose eval.json has no finite
mIoU is "not compared": one line under the table, and the same line as a warning on stderr.
"""
import json
import os
import warnings

HELP = "print a results table for run or stage directories"


def add_arguments(parser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--json", action="store_true", help="print the table's entries as JSON")
    parser.add_argument("--baseline", metavar="NAME", help="the RUN_DIR (by its folder name) the others are compared "
                        "with, paired by seed (default: the first one trained without a teacher whose model a "
                        "distilled one shares)")


def run(args) -> int:
    from hmkd.evaluation.record import EvalRecord
    from hmkd.reporting.diagnostics import diagnostics, diagnostics_markdown
    from hmkd.reporting.results import aggregate, markdown, not_compared
    from hmkd.rundir import found_runs

    trained = [(os.path.basename(os.path.normpath(d)), run) for d in args.run_dirs for run in found_runs(d)]
    rows = [(label, EvalRecord.read(run.eval_json), run.path) for label, run in trained]
    entries = aggregate(rows, args.baseline)
    for line in not_compared(entries):
        warnings.warn(line)
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    extra = diagnostics_markdown(diagnostics(trained, [e["label"] for e in entries if e["teacher"]]))
    print(markdown(entries) + ("\n\n" + extra if extra else ""))
    return 0
