"""hmkd models: list the registered model names with their stage widths and strides."""
HELP = "list the registered models"


def add_arguments(parser) -> None:
    parser.add_argument("--num-classes", type=int, default=19, help="classes used to build each model (default 19)")


def run(args) -> int:
    from hmkd.models import build_model, list_models

    for name in list_models():
        model = build_model(name, args.num_classes)
        stages = " ".join("%d@/%d" % (i.channels, i.reduction) for i in model.feature_info)
        print("%-16s logits@/%d  features %s" % (name, model.logits_reduction, stages))
    return 0
