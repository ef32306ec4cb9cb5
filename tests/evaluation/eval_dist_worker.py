"""Helpers shared by test_evaluator.py and the processes it spawns (spawned children import this by name)."""
import os

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from hmkd.models import SegOutput

NUM_CLASSES = 4
IGNORE = 255
SIZES = [(12, 16), (9, 14), (16, 12), (10, 10), (13, 15)]   # five images of different sizes
SLIDE = dict(mode="slide", crop_size=[8, 8], stride=[5, 5], flip=True)   # an eval protocol (EvalConfig keys)


class RecordingDataset(Dataset):
    """Five deterministic (image, label) pairs of different sizes; remembers which indices this process loaded."""

    num_classes = NUM_CLASSES
    ignore_index = IGNORE

    def __init__(self):
        self.loaded = []

    def __len__(self):
        return len(SIZES)

    def __getitem__(self, index):
        self.loaded.append(index)
        g = torch.Generator().manual_seed(index)
        h, w = SIZES[index]
        label = torch.randint(0, NUM_CLASSES, (h, w), generator=g)
        label[torch.rand(h, w, generator=g) < 0.2] = IGNORE
        return {"image": torch.randn(3, h, w, generator=g), "label": label, "name": "img_%d" % index}


class TinySegmentor(nn.Module):
    """A 3x3 conv then 2x2 pooling (logits at 1/2), with fixed weights so every process builds the same model."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, NUM_CLASSES, 3, padding=1)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g))
            self.conv.bias.copy_(torch.randn(NUM_CLASSES, generator=g))

    def forward(self, images_bchw):
        return SegOutput(F.avg_pool2d(self.conv(images_bchw), 2, ceil_mode=True), [])


def run_rank(rank, world_size, init_file, out_dir):
    """One evaluation process: shard, infer, all-reduce; saves what it computed and which indices it loaded."""
    from hmkd.config.schema import EvalConfig
    from hmkd.evaluation import evaluate

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="file://" + init_file, rank=rank, world_size=world_size)
    try:
        dataset = RecordingDataset()
        metrics = evaluate(TinySegmentor(), dataset, EvalConfig(**SLIDE), "cpu")
        torch.save({"metrics": metrics, "loaded": dataset.loaded}, os.path.join(out_dir, "rank%d.pt" % rank))
    finally:
        dist.destroy_process_group()
