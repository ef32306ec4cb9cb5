"""hmkd export RUN_DIR --format onnx|torchscript [--output PATH] [--size HxW] [--no-verify]: the trained student of
a finished run as a deployable file (logits at the input resolution; normalisation and class names inside).

The file is checked against torch at two input sizes before it is written (see hmkd.deploy.export); the default
output is RUN_DIR/model.onnx or RUN_DIR/model.torchscript.pt.
"""
import json

from hmkd.cli.common import parse_size

HELP = "export a finished run's student to ONNX or TorchScript"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", help="run directory of a finished train or distill stage (model.pth, DONE)")
    parser.add_argument("--format", required=True, metavar="onnx|torchscript",
                        help="onnx (onnxruntime, opset 14) or torchscript (torch.jit / libtorch)")
    parser.add_argument("--output", default=None,
                        help="file to write (default RUN_DIR/model.onnx or RUN_DIR/model.torchscript.pt)")
    parser.add_argument("--size", type=parse_size, default=None,
                        help="HEIGHTxWIDTH to trace and check at (default: the training crop); height and width "
                             "stay dynamic in the file")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip running the file against torch before writing it")


def run(args) -> int:
    from hmkd.deploy import TOLERANCE, export_run

    result = export_run(args.run_dir, args.format, output=args.output, size=args.size, verify=args.verify)
    meta = {key: json.loads(value) for key, value in result.metadata.items()}
    norm, out = meta["hmkd.normalization"], meta["hmkd.output"]
    print("wrote %s (%s, %.2f MB): %s, %d classes, logits NCHW at the input resolution (from stride %d); input NCHW "
          "float32, %s: %s, mean %s, std %s" % (result.path, result.format, result.bytes / 1e6, meta["hmkd.model"],
                                                out["channels"], out["model_output_stride"], norm["mode"],
                                                norm["channel_order"], norm["mean"], norm["std"]))
    if result.max_abs_diff:
        print("checked against torch: max |diff| %s (tolerance %g)" % (", ".join(
            "%.2g at %s" % (diff, size) for size, diff in result.max_abs_diff.items()), TOLERANCE))
    return 0
