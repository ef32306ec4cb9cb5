"""hmkd flops MODEL --num-classes K --size HxW [--counter mmcv|torch] [--json]: parameters and FLOPs
(multiply-accumulates). On torch 2 the model is counted on the meta device (shapes only: seconds for any model)."""
import json

from hmkd.cli.common import parse_size

HELP = "count a model's parameters and FLOPs at an input size"


def add_arguments(parser) -> None:
    parser.add_argument("model", help="a registered model name (see `hmkd models`)")
    parser.add_argument("--num-classes", type=int, required=True)
    parser.add_argument("--size", required=True, type=parse_size, help="input HEIGHTxWIDTH, e.g. 512x1024")
    parser.add_argument("--counter", choices=("mmcv", "torch"), default=None,
                        help="which FLOP counter (default: mmcv where installed, else torch.utils.flop_counter)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def run(args) -> int:
    from hmkd.models import build_model
    from hmkd.models.complexity import model_complexity, shapes_only

    size = args.size
    try:
        info = model_complexity(shapes_only(build_model(args.model, args.num_classes)), size, args.counter)
    except ImportError as exc:
        raise ValueError(str(exc)) from None
    info.update(model=args.model, num_classes=args.num_classes, size=list(size), flops_unit="multiply-accumulates")
    if args.json:
        print(json.dumps(info, sort_keys=True))
    else:
        if info["counter"] == "mmcv":
            how = "mmcv %.2f + attention products %.2f" % (info["flops_mmcv"] / 1e9, info["flops_attention"] / 1e9)
        else:
            how = "torch.utils.flop_counter, attention products %.2f included" % (info["flops_attention"] / 1e9)
        print("%s (%d classes, %dx%d): %.2f M parameters, %.2f GFLOPs (%s; FLOPs counted as multiply-accumulates)"
              % (args.model, args.num_classes, size[0], size[1], info["params"] / 1e6, info["flops"] / 1e9, how))
    return 0
