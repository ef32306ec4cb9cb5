"""hmkd eval CONFIG --checkpoint PATH --run-dir DIR [--server-files] [key.sub=value ...]: evaluate a checkpoint.

The protocol comes from the config's eval section (whole / slide, flip, scales, split); results go to
DIR/eval.json, a printed per-class table and DIR/plots/predictions; with --server-files (eval.server_files=true)
also DIR/server/*.png and DIR/server.zip for the Cityscapes benchmark server; DONE is written last.
"""
from hmkd.cli.common import add_config_arguments

HELP = "evaluate a checkpoint (mIoU, pixel accuracy, per-class IoU)"


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--checkpoint", required=True,
                        help="model.pth of a run (the trained weights), a step checkpoint, or a weights file")
    parser.add_argument("--server-files", action="store_true",
                        help="also write every prediction as a Cityscapes labelIds PNG for the benchmark server, "
                             "and their zip (DIR/server/, DIR/server.zip); the same as eval.server_files=true")


def run(args) -> int:
    from hmkd.cli.common import load_with_overrides
    from hmkd.engine.stage import run_eval_stage

    if args.server_files:
        args.overrides = list(args.overrides) + ["eval.server_files=true"]
    run_eval_stage(load_with_overrides(args), args.run_dir, args.checkpoint)
    return 0
