"""Progress of ``hmkd predict``: a bar with images/s and ETA on a terminal, a plain line now and then otherwise.

Usage:
    progress = Progress(total=120, stream=sys.stdout)     # total None: unknown (e.g. a video without a frame count)
    progress.update(4); ...; progress.close()             # the last line is always printed

Logs and CI capture the output as a file, where a carriage-return bar would be one huge line: there it is a line
every ``interval`` seconds (and at the end), each complete.
"""
import sys
import time
from typing import Optional, TextIO


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return ("%d:%02d:%02d" % (hours, rest // 60, rest % 60)) if hours else "%d:%02d" % (rest // 60, rest % 60)


class Progress:
    WIDTH = 24

    def __init__(self, total: Optional[int], stream: TextIO = sys.stdout, interval: float = 10.0,
                 tty: Optional[bool] = None, what: str = "images"):
        self.total, self.stream, self.what = total, stream, what
        self.tty = bool(getattr(stream, "isatty", lambda: False)()) if tty is None else tty
        self.interval = 0.2 if self.tty else interval
        self.done = 0
        self.start = time.perf_counter()
        self.last = self.start
        self.shown = 0  # length of the bar line on screen, so a shorter one covers it

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate()
        total = self.total if self.total is not None and self.total >= self.done else None
        eta = "ETA %s" % _duration((total - self.done) / rate) if total is not None and rate > 0 else "ETA ?"
        count = "%d/%d" % (self.done, total) if total is not None else "%d" % self.done
        if not self.tty:
            return "predict: %s %s, %.2f %s/s, %s" % (count, self.what, rate, self.what, eta)
        filled = int(self.WIDTH * self.done / total) if total else 0
        return "predict [%s%s] %s, %.2f %s/s, %s" % ("#" * filled, "." * (self.WIDTH - filled), count, rate,
                                                     self.what, eta)

    def update(self, count: int = 1) -> None:
        self.done += count
        now = time.perf_counter()
        if now - self.last >= self.interval:
            self.last = now
            self._show()

    def _show(self, final: bool = False) -> None:
        if self.tty:
            text = self.line()
            self.stream.write("\r" + text.ljust(self.shown) + ("\n" if final else ""))
            self.shown = len(text)
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        self._show(final=True)
