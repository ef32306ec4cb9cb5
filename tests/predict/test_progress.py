"""Progress: a carriage-return bar with images/s and ETA on a terminal, whole plain lines otherwise."""
import io

from hmkd.predict.progress import Progress


def test_bar_on_a_terminal_and_lines_elsewhere():
    screen = io.StringIO()
    bar = Progress(8, screen, tty=True)
    bar.interval = 0.0   # every update redraws
    for _ in range(4):
        bar.update()
    bar.close()
    text = screen.getvalue()
    assert text.count("\r") == 5 and text.endswith("\n") and text.count("\n") == 1
    assert "[############............] 4/8" in text and "images/s, ETA " in text

    log = io.StringIO()
    plain = Progress(None, log, interval=3600.0)   # not a terminal: a line per interval, and the last one
    assert not plain.tty
    plain.update(3)
    plain.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("predict: 3 images, ") and lines[0].endswith("ETA ?")
    assert "\r" not in log.getvalue()
