"""hmkd data CONFIG [key.sub=value ...] [--split S] [--check quick|full] [--write-list FILE]: inspect a dataset.

Checks a split the way training does (``full`` decodes every image and label) and can write the file list derived
from the dataset layout in the list-file format (``image label`` per line), to inspect or to freeze it.
"""
HELP = "check a dataset split and optionally write its file list"


def add_arguments(parser) -> None:
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value")
    parser.add_argument("--split", default="train", choices=("train", "val", "test"))
    parser.add_argument("--check", default="full", choices=("none", "quick", "full"))
    parser.add_argument("--write-list", metavar="FILE", help="write the split's image/label pairs to FILE")


def run(args) -> int:
    from hmkd.config import load_config
    from hmkd.data import build_dataset, write_sample_list

    cfg = load_config(args.config, args.overrides)
    dataset = build_dataset(cfg.data, split=args.split, train=False, validate=args.check)
    print("%s/%s: %d samples, %d classes, check %s passed" % (cfg.data.name, args.split, len(dataset),
                                                             dataset.num_classes, args.check))
    if args.write_list:
        count = write_sample_list(dataset, args.write_list)
        print("wrote %d lines to %s" % (count, args.write_list))
    return 0
