"""``hmkd predict``'s loop: inputs decoded in threads, same-size images batched through the backend with evaluation's
inference, outputs encoded and written atomically in threads, a rerun resuming where a killed one stopped.

Usage:
    options = PredictOptions(mode="slide", crop_size=(512, 1024), stride=(341, 682), flip=True, batch_size=4)
    summary = predict(expand_sources(["photos/"]), load_backend("runs/smoke/hmkd"), Outputs("out", ["palette"],
                      names), options)
    summary.predicted, summary.skipped, summary.failed        # counts, and one line per failed input

Order of work: a reader thread walks the inputs in order, hands image files to the decoding threads and reads
videos itself (frames come in order only), with at most ``prefetch`` inputs in flight; the main thread groups
consecutive inputs of one size into batches of up to ``batch_size``, runs ``predict_logits`` (whole or sliding
window, flip: the same function as ``hmkd eval``), and gives each prediction to the writing threads. An input whose
outputs all exist is not decoded (``overwrite`` redoes it); the temp files a killed run left are removed first.
A bad input is a ``BadInput`` line naming it: with ``skip_bad`` the run goes on and counts it, else it stops there,
after what came before it is written.
"""
import os
import queue
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch

from hmkd.atomic import atomic_write_bytes
from hmkd.data.transforms import Normalize
from hmkd.evaluation.inference import check_options, predict_logits
from hmkd.predict.backends import Backend
from hmkd.predict.outputs import Outputs, VideoOut, overlay_picture
from hmkd.predict.progress import Progress
from hmkd.predict.reading import BadInput, Conversions, Video, read_image, video_frame_count
from hmkd.predict.sources import VIDEO, Input


class PredictOptions(NamedTuple):
    mode: str = "whole"
    crop_size: Optional[Tuple[int, int]] = None
    stride: Optional[Tuple[int, int]] = None
    flip: bool = False
    batch_size: int = 1
    batch_windows: int = 4
    workers: int = 2
    skip_bad: bool = False
    video_out: bool = False
    strict_input: bool = False


class Summary(NamedTuple):
    predicted: int                 # images and frames predicted in this run
    frames: int                    # of which video frames
    videos: int                    # videos read (frames predicted or an annotated video written)
    skipped: int                   # inputs (images, frames, videos) whose outputs existed
    failed: List[str]              # one line per bad input (skipped with skip_bad)
    seconds: float
    conversions: str


class Frame(NamedTuple):
    """One image or video frame, decoded and normalised, with what is left to write for it."""
    stem: str
    image_bgr: np.ndarray
    input_chw: np.ndarray
    todo: List[str]
    video: Optional[VideoOut]   # the annotated video this frame goes into (--video-out), else None
    is_frame: bool              # a video's frame (written per frame or into ``video``), not an image file


class _EndOfVideo(NamedTuple):
    video: VideoOut


def _done(value: Any) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def _failed(exc: BaseException) -> Future:
    future: Future = Future()
    future.set_exception(exc)
    return future


class _Reader:
    """The reader thread: futures of Frames (or _EndOfVideo markers) in input order, through a bounded queue."""

    _END = object()

    def __init__(self, plan: Sequence[Tuple[Input, List[str]]], outputs: Outputs, options: PredictOptions,
                 normalize: Normalize, conversions: Conversions, pool: ThreadPoolExecutor, prefetch: int):
        self.plan, self.outputs, self.options = plan, outputs, options
        self.normalize, self.conversions, self.pool = normalize, conversions, pool
        self.queue: "queue.Queue[Any]" = queue.Queue(maxsize=prefetch)
        self.stop = threading.Event()
        self.skipped = 0
        self.videos = 0
        self.thread = threading.Thread(target=self._run, name="hmkd-predict-reader", daemon=True)

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _prepare(self, stem: str, image_bgr: np.ndarray, todo: List[str], video: Optional[VideoOut],
                 is_frame: bool = True) -> Frame:
        input_chw = np.empty((3,) + image_bgr.shape[:2], dtype=np.float32)
        self.normalize.into_chw(image_bgr, input_chw)
        return Frame(stem, image_bgr, input_chw, todo, video, is_frame)

    def _decode(self, item: Input, todo: List[str]) -> Frame:
        return self._prepare(item.stem, read_image(item.path, self.conversions), todo, None, is_frame=False)

    def _video(self, item: Input) -> Iterator[Future]:
        out_path = self.outputs.video_path(item.stem)
        try:
            video = Video(item.path)
        except BadInput as exc:
            yield _failed(exc)
            return
        self.videos += 1
        sink: Optional[VideoOut] = None
        try:
            for index, frame_bgr in video.frames():
                stem = "%s/%06d" % (item.stem, index)
                if self.options.video_out:
                    if sink is None:
                        sink = VideoOut(out_path, video.fps, frame_bgr.shape[:2])
                    todo: List[str] = []
                else:
                    todo = self.outputs.missing(stem)
                    if not todo:
                        self.skipped += 1
                        continue
                yield self.pool.submit(self._prepare, stem, frame_bgr, todo, sink)
        except BadInput as exc:
            if sink is not None:
                sink.discard()
            yield _failed(exc)
            return
        finally:
            video.close()
        if sink is not None:
            yield _done(_EndOfVideo(sink))

    def _run(self) -> None:
        try:
            for item, todo in self.plan:
                if item.kind == VIDEO:
                    for future in self._video(item):
                        if not self._put(future):
                            return
                    continue
                if not self._put(self.pool.submit(self._decode, item, todo)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            self._put(_failed(exc))
        finally:
            self._put(self._END)

    def __iter__(self) -> Iterator[Future]:
        self.thread.start()
        while True:
            item = self.queue.get()
            if item is self._END:
                return
            yield item

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


class _Writer:
    """Encodes and writes each prediction's files in threads, at most ``limit`` predictions queued; the first
    write error is raised in the main thread."""

    def __init__(self, outputs: Outputs, pool: ThreadPoolExecutor, limit: int):
        self.outputs, self.pool, self.limit = outputs, pool, limit
        self.pending: List[Future] = []

    def _write(self, frame: Frame, pred_hw: np.ndarray, probs_khw: Optional[np.ndarray]) -> None:
        for path, data in self.outputs.render(frame.stem, frame.todo, frame.image_bgr, pred_hw, probs_khw):
            atomic_write_bytes(path, data)

    def submit(self, frame: Frame, pred_hw: np.ndarray, probs_khw: Optional[np.ndarray]) -> None:
        self.pending.append(self.pool.submit(self._write, frame, pred_hw, probs_khw))
        while len(self.pending) > self.limit:
            self.pending.pop(0).result()
        while self.pending and self.pending[0].done():
            self.pending.pop(0).result()

    def wait(self) -> None:
        while self.pending:
            self.pending.pop(0).result()


def _plan(inputs: Sequence[Input], outputs: Outputs, options: PredictOptions
          ) -> Tuple[List[Tuple[Input, List[str]]], int, Optional[int]]:
    """(inputs with the kinds left to write, inputs skipped as done, images to predict: the videos' count is their
    containers' estimate, None when one has none). Per-frame outputs of a video are checked as its frames come."""
    plan: List[Tuple[Input, List[str]]] = []
    skipped, total = 0, 0  # type: int, Optional[int]
    for item in inputs:
        if item.kind == VIDEO:
            if options.video_out and not outputs.overwrite and os.path.exists(outputs.video_path(item.stem)):
                skipped += 1
                continue
            plan.append((item, []))
            count = video_frame_count(item.path)
            total = None if total is None or count is None else total + count
            continue
        todo = outputs.missing(item.stem)
        if not todo:
            skipped += 1
            continue
        plan.append((item, todo))
        total = None if total is None else total + 1
    return plan, skipped, total


def predict_batch(backend: Backend, inputs_chw: Sequence[np.ndarray], options: PredictOptions) -> torch.Tensor:
    """(B, K, H, W) float32 logits of same-size normalised images, by ``hmkd.evaluation``'s ``predict_logits``."""
    batch = torch.from_numpy(np.stack(inputs_chw)).to(backend.device)
    extra: Dict[str, Any] = {}
    if options.mode == "slide":
        extra = {"crop_size": options.crop_size, "stride": options.stride}
    return predict_logits(backend, batch, mode=options.mode, flip=options.flip, batch_windows=options.batch_windows,
                          **extra)


def predict(inputs: Sequence[Input], backend: Backend, outputs: Outputs, options: PredictOptions,
            conversions: Optional[Conversions] = None, stream=None, report: Callable[[str], None] = None,
            progress_interval: float = 10.0) -> Summary:
    """Predicts every input not done yet; returns what happened (see the module's docstring)."""
    check_options(options.mode, options.crop_size if options.mode == "slide" else None,
                  options.stride if options.mode == "slide" else None, (1.0,), options.batch_windows)
    if options.batch_size < 1 or options.workers < 1:
        raise ValueError("--batch-size and --workers must be >= 1, got %d and %d"
                         % (options.batch_size, options.workers))
    stream = stream if stream is not None else sys.stdout
    report = report or (lambda line: print(line, file=sys.stderr, flush=True))
    conversions = conversions or Conversions(strict=options.strict_input)
    outputs.remove_stale_temps()
    started = time.perf_counter()
    normalize = Normalize(backend.normalize)
    num_classes = len(backend.class_names)
    plan, skipped, total = _plan(inputs, outputs, options)
    progress = Progress(total, stream, interval=progress_interval)
    predicted = frames = 0
    failed: List[str] = []
    pending: List[Frame] = []

    def flush() -> None:
        nonlocal predicted, frames
        if not pending:
            return
        logits = predict_batch(backend, [f.input_chw for f in pending], options)
        if logits.shape[1] != num_classes:
            raise ValueError("%s gives %d channels of logits but has %d class names (%s); give --classes with %d "
                             "names" % (backend.path, logits.shape[1], num_classes, ",".join(backend.class_names),
                                        logits.shape[1]))
        preds = logits.argmax(dim=1).to(torch.uint8).cpu().numpy()
        probs = logits.softmax(dim=1).half().cpu().numpy() if outputs.needs_probabilities else None
        for j, frame in enumerate(pending):
            if frame.video is not None:
                frame.video.write(overlay_picture(frame.image_bgr, preds[j], outputs.palette, outputs.alpha))
            else:
                writer.submit(frame, preds[j], None if probs is None else probs[j])
            frames += frame.is_frame
        predicted += len(pending)
        progress.update(len(pending))
        del pending[:]

    decode_pool = ThreadPoolExecutor(options.workers, thread_name_prefix="hmkd-predict-decode")
    write_pool = ThreadPoolExecutor(options.workers, thread_name_prefix="hmkd-predict-write")
    writer = _Writer(outputs, write_pool, limit=2 * options.workers + options.batch_size)
    reader = _Reader(plan, outputs, options, normalize, conversions, decode_pool,
                     prefetch=options.batch_size + 2 * options.workers)
    open_videos: List[VideoOut] = []
    try:
        for future in reader:
            try:
                item = future.result()
            except BadInput as exc:
                flush()
                if not options.skip_bad:
                    raise
                failed.append(str(exc))
                report("hmkd predict: skipped: %s" % exc)
                continue
            if isinstance(item, _EndOfVideo):
                flush()
                item.video.publish()
                open_videos.remove(item.video)
                continue
            if item.video is not None and item.video not in open_videos:
                open_videos.append(item.video)
            if pending and (pending[0].input_chw.shape != item.input_chw.shape or len(pending) >= options.batch_size):
                flush()
            pending.append(item)
        flush()
        writer.wait()
    finally:
        reader.close()
        for video in open_videos:
            video.discard()
        decode_pool.shutdown(wait=True)
        write_pool.shutdown(wait=True)
    progress.close()
    return Summary(predicted, frames, reader.videos, skipped + reader.skipped, failed, time.perf_counter() - started,
                   conversions.summary())
