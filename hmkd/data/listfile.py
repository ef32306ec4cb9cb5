"""A dataset given by a list file: one ``image_path label_path`` pair per line, labels already holding train ids.

Usage:
    ds = ListDataset("splits/train.txt", num_classes=11, root="/data/mine", class_names=[...])

Relative paths are resolved against ``root`` (default: the list file's directory). Blank lines and lines starting
with ``#`` are skipped. Label values must be 0..num_classes-1 or 255 (ignore). ``write_sample_list`` writes this
format from any file dataset.
"""
import os
from typing import List, Optional, Sequence

from hmkd.data.base import IGNORE_INDEX, Sample, SegDataset, default_palette
from hmkd.data.files import DatasetError
from hmkd.data.validation import identity_spec


def read_sample_list(list_path: str, root: Optional[str] = None) -> List[Sample]:
    """Parses the list; raises DatasetError naming the file and line of every malformed entry."""
    if not os.path.isfile(list_path):
        raise DatasetError(["list file %s does not exist; expected a text file of 'image_path label_path' lines"
                            % list_path])
    base = root if root is not None else os.path.dirname(os.path.abspath(list_path))
    if not os.path.isdir(base):
        raise DatasetError(["list root %s (for %s) does not exist; expected the directory the list's relative paths "
                            "start from" % (base, list_path)])
    samples, problems = [], []
    with open(list_path) as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) != 2:
                problems.append("list %s line %d has %d fields (%r); expected 'image_path label_path'"
                                % (list_path, number, len(fields), line.strip()[:80]))
                continue
            samples.append(Sample(*(os.path.normpath(os.path.join(base, p)) for p in fields)))
    if problems:
        raise DatasetError(problems, "list %s: %d malformed lines" % (list_path, len(problems)))
    if not samples:
        raise DatasetError(["list %s holds no samples; expected 'image_path label_path' lines" % list_path])
    return samples


class ListDataset(SegDataset):
    """Any dataset whose labels are train ids 0..K-1 with 255 as ignore."""

    def __init__(self, list_path: str, num_classes: int, root: Optional[str] = None,
                 class_names: Optional[Sequence[str]] = None, palette: Optional[Sequence[Sequence[int]]] = None,
                 transform=None, seed: int = 0):
        if not 0 < num_classes <= IGNORE_INDEX:
            raise ValueError("num_classes must be in 1..%d, got %r" % (IGNORE_INDEX, num_classes))
        if class_names is None:
            class_names = ["class_%d" % k for k in range(num_classes)]
        what = "list %s" % os.path.basename(list_path)
        super().__init__(read_sample_list(list_path, root), num_classes, class_names,
                         palette if palette is not None else default_palette(num_classes),
                         identity_spec(num_classes, IGNORE_INDEX, what), transform=transform, seed=seed, name=what)
        self.list_path, self.root = list_path, root
