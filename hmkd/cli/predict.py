"""hmkd predict SOURCE... --model RUN_DIR|model.pth|model.onnx|model.pt --out DIR: the trained student on your own
images and videos, with the model's own pre-processing, through torch or the exported file's runtime.

SOURCE: image files, folders (recursive, sorted), glob patterns, .txt/.lst lists of paths, videos
(hmkd.predict.sources).
Outputs (--outputs, one folder each under DIR): palette, label, overlay, probs, confidence (hmkd.predict.outputs);
a rerun skips what exists (--overwrite redoes it). Exit status: 0, 1 when inputs were skipped as bad (--skip-bad),
2 on an error (one line).
"""
import os

from hmkd.cli.common import parse_size

HELP = "predict your own images, folders, lists or videos with a trained student (torch, ONNX or TorchScript)"


def add_arguments(parser) -> None:
    parser.add_argument("sources", nargs="+", metavar="SOURCE",
                        help="image files, folders (searched recursively), glob patterns, .txt/.lst lists, videos")
    parser.add_argument("--model", required=True,
                        help="a finished run directory, its model.pth, or a file of hmkd export (.onnx, "
                             "TorchScript .pt)")
    parser.add_argument("--out", required=True, help="output folder (one sub-folder per kind of output)")
    parser.add_argument("--outputs", default="palette,overlay",
                        help="comma-separated: palette (indexed PNG: class ids + colours), label (class-id PNG), "
                             "overlay (image + colours), probs (float16 .npy, K x H x W), confidence (float16 .npy); "
                             "default palette,overlay")
    parser.add_argument("--label-ids", action="store_true",
                        help="label PNGs in Cityscapes labelIds (as the benchmark-server files), not trainIds")
    parser.add_argument("--alpha", type=float, default=0.5, help="the colour map's weight in the overlay (0..1)")
    parser.add_argument("--mode", default="whole", choices=("whole", "slide"),
                        help="whole image, or sliding windows of --crop-size every --stride (as hmkd eval)")
    parser.add_argument("--crop-size", type=parse_size, default=None,
                        help="slide: the window, HxW (default: the run's eval.crop_size)")
    parser.add_argument("--stride", type=parse_size, default=None,
                        help="slide: the step between windows, HxW (default: the run's eval.stride)")
    parser.add_argument("--flip", action="store_true", help="also predict the mirrored image and average the logits")
    parser.add_argument("--batch-size", type=int, default=4, help="images of the same size per forward pass")
    parser.add_argument("--batch-windows", type=int, default=4, help="slide: windows per forward pass")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="threads decoding inputs and writing outputs (each)")
    parser.add_argument("--device", default="auto", help="auto (a GPU when one is visible), cpu or cuda")
    parser.add_argument("--amp", default=None, choices=("fp16", "bf16"),
                        help="autocast the torch backend's forward (CUDA; bf16 on the CPU with torch 2)")
    parser.add_argument("--video-out", action="store_true",
                        help="for videos, one annotated video (DIR/video/NAME.mp4) instead of outputs per frame")
    parser.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip unreadable inputs with a line each (exit status 1 at the end) instead of stopping")
    parser.add_argument("--strict-input", action="store_true",
                        help="refuse 16-bit and RGBA images instead of converting them with a warning")
    parser.add_argument("--normalize", default=None,
                        help="for files that record none: the input normalisation (imagenet_rgb or bgr_mean)")
    parser.add_argument("--classes", default=None,
                        help="for files that record none: class names, comma-separated, or their count")


def run(args) -> int:
    import logging
    import sys
    import warnings

    from hmkd.predict import (Outputs, PredictOptions, check_out_dir, expand_sources, load_backend, parse_kinds,
                              predict)
    from hmkd.predict.sources import VIDEO

    kinds = parse_kinds(args.outputs)
    check_out_dir(args.out)
    inputs = expand_sources(args.sources)
    videos = sum(1 for i in inputs if i.kind == VIDEO)
    if args.video_out and not videos:
        warnings.warn("--video-out is ignored: no SOURCE is a video")
    logging.getLogger("hmkd.models.weights").setLevel(logging.WARNING)  # the start line below says what loaded
    backend = load_backend(args.model, args.device, args.normalize, args.classes, args.amp)
    crop, stride = args.crop_size, args.stride
    if args.mode == "slide" and (crop is None or stride is None):
        if backend.window is None:
            raise ValueError("--mode slide needs --crop-size and --stride (HxW each; e.g. 512x1024 and 341x682), "
                             "%s records no eval window" % args.model)
        crop, stride = crop or backend.window[0], stride or backend.window[1]
    outputs = Outputs(args.out, kinds, backend.class_names, args.alpha, args.label_ids, args.overwrite)
    options = PredictOptions(mode=args.mode, crop_size=crop, stride=stride, flip=args.flip, batch_size=args.batch_size,
                             batch_windows=args.batch_windows, workers=args.workers, skip_bad=args.skip_bad,
                             video_out=args.video_out, strict_input=args.strict_input)
    window = " %dx%d windows every %dx%d" % (crop + stride) if args.mode == "slide" else ""
    print("predict: %s and %s with %s %s (%s, %s; %s normalisation; %d classes, %s) in %s mode%s%s -> %s (%s)" % (
        _count(len(inputs) - videos, "image"), _count(videos, "video"), backend.name, backend.model_name or "?",
        backend.device, backend.precision.name, backend.normalize, len(backend.class_names), outputs.palette_source,
        args.mode, window, " + flip" if args.flip else "", args.out,
        "video" if args.video_out and videos else ", ".join(kinds)), flush=True)
    summary = predict(inputs, backend, outputs, options)
    rate = summary.predicted / summary.seconds if summary.seconds > 0 else 0.0
    parts = ["predicted %d images%s in %.1f s (%.2f images/s)" % (
        summary.predicted, " (%d of them video frames)" % summary.frames if summary.frames else "", summary.seconds,
        rate)]
    if summary.skipped:
        parts.append("%d skipped: their outputs exist (--overwrite redoes them)" % summary.skipped)
    if summary.conversions:
        parts.append(summary.conversions)
    if summary.failed:
        parts.append("%d bad inputs skipped (listed above)" % len(summary.failed))
    print("; ".join(parts) + " -> %s" % args.out, flush=True)
    if summary.failed:
        print("hmkd predict: %d inputs failed (listed above); exit status 1" % len(summary.failed), file=sys.stderr)
        return 1
    return 0


def _count(n: int, what: str) -> str:
    return "%d %s%s" % (n, what, "" if n == 1 else "s")
