"""hmkd distill CONFIG [key.sub=value ...] --run-dir DIR: train a student with a frozen teacher.

The same engine as ``hmkd train``; the config's ``teacher`` section names the teacher model and the checkpoint it
is loaded from (strictly, before training starts), and ``loss.terms`` adds the distillation terms.
"""
from hmkd.cli.common import add_config_arguments

HELP = "distill a teacher into a student (HMKD's GLA + HFA, or the KD / CWD / FitNet baselines)"


def add_arguments(parser) -> None:
    add_config_arguments(parser)


def run(args) -> int:
    from hmkd.cli.common import load_with_overrides, run_training

    cfg = load_with_overrides(args)
    if cfg.teacher is None:
        raise ValueError("%s has no teacher section; hmkd distill needs teacher.name and teacher.checkpoint (use "
                         "hmkd train for a run without a teacher)" % args.config)
    run_training(cfg, args.run_dir)
    return 0
