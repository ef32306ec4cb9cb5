"""hmkd train CONFIG [key.sub=value ...] --run-dir DIR: train a segmentor (resumes from the run directory).

Also the teacher-pretraining stage of a pipeline. DONE is written last, only after training, the final
evaluation and the exports succeeded; a run directory with DONE is left alone.
"""
from hmkd.cli.common import add_config_arguments

HELP = "train a model (resumes automatically from the run directory)"


def add_arguments(parser) -> None:
    add_config_arguments(parser)


def run(args) -> int:
    from hmkd.cli.common import load_with_overrides, run_training

    cfg = load_with_overrides(args)
    run_training(cfg, args.run_dir)
    return 0
