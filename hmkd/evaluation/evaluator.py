"""Dataset-level evaluation of a segmentor under an eval protocol, sharded over ranks so that every image is counted
exactly once.

Usage:
    metrics = evaluate(model, val_set, cfg.eval, device)                        # one process
    metrics = evaluate(model, val_set, cfg.eval, env.device, env.rank, env.world_size,
                       out_dir=RunDir(run_dir).predictions)                   # + the first pictures
    metrics = evaluate(model, val_set, cfg.eval, device, picture_sink=lambda stem, picture_rgb: ...)   # TensorBoard
    metrics = evaluate(model, test_set, cfg.eval, on_prediction=writer.write)   # + every prediction, to a writer

The dataset is a sequence of {"image", "label", "name"} dicts that declares ``num_classes`` (and optionally
``ignore_index``, ``palette`` and ``transform.normalize``, as ``hmkd.data.SegDataset`` does). The protocol is an
``EvalConfig`` (mode, crop_size, stride, flip, scales, batch_windows, num_visualize).
"""
import os
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader

from hmkd.data.base import IGNORE_INDEX, default_palette
from hmkd.evaluation.inference import check_options, predict_logits
from hmkd.evaluation.metrics import SegMetric
from hmkd.evaluation.pictures import file_stem, prediction_picture, write_picture
from hmkd.evaluation.sampler import ShardSampler


def _rank_world(rank: Optional[int], world_size: Optional[int]) -> Tuple[int, int]:
    if rank is not None and world_size is not None:
        return rank, world_size
    if rank is not None or world_size is not None:
        raise ValueError("give both rank and world_size, or neither (then torch.distributed decides)")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _unwrap(model: nn.Module) -> nn.Module:
    """The bare network: ranks run different numbers of forwards here, which a DDP wrapper's syncs must not see."""
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    while isinstance(model, wrappers):
        model = model.module
    return model


def inference_options(protocol: Any) -> Dict[str, Any]:
    """``predict_logits``'s keyword arguments from an eval protocol; window options only in slide mode."""
    options = {"mode": protocol.mode, "flip": protocol.flip, "scales": tuple(protocol.scales),
               "batch_windows": protocol.batch_windows}
    if protocol.mode == "slide":
        options.update(crop_size=protocol.crop_size, stride=protocol.stride)
    return options


def evaluate(model: nn.Module, dataset: Any, protocol: Any, device: Union[str, torch.device] = "cpu",
             rank: Optional[int] = None, world_size: Optional[int] = None, out_dir: Optional[str] = None,
             picture_sink: Optional[Callable[[str, np.ndarray], None]] = None,
             on_prediction: Optional[Callable[[int, Tensor], None]] = None) -> Dict[str, Any]:
    """Metrics of ``model`` over ``dataset``, summed over all ranks (see ``SegMetric.compute`` for the keys).

    Each rank reads its shard (``ShardSampler``) at batch size 1, since images may differ in size. The model runs in
    eval mode and its previous mode is restored. With ``out_dir``, the first ``protocol.num_visualize`` images of
    the dataset (by index) are saved as ``out_dir/<name>.png``; without it nothing is written, so periodic
    validations during training stay quiet. ``picture_sink(stem, picture_rgb)`` receives the pictures of the first
    ``protocol.num_visualize`` images of this rank's own shard, so a rank that logs (rank 0) gets them without
    gathering pictures from the others. ``on_prediction(index, pred_hw)`` sees every prediction of this rank's shard
    (class ids at the image's full size), e.g. to write benchmark-server files.
    """
    rank, world_size = _rank_world(rank, world_size)
    device = torch.device(device)
    options = inference_options(protocol)
    check_options(options["mode"], options.get("crop_size"), options.get("stride"), options["scales"],
                  options["batch_windows"])  # here too: a rank with no images must fail like the others
    num_classes, ignore_index = dataset.num_classes, getattr(dataset, "ignore_index", IGNORE_INDEX)
    num_files = protocol.num_visualize if out_dir is not None else 0
    num_sunk = protocol.num_visualize if picture_sink is not None else 0
    palette = getattr(dataset, "palette", None) or default_palette(num_classes)
    normalize = getattr(getattr(dataset, "transform", None), "normalize", None)
    sampler = ShardSampler(len(dataset), rank, world_size)
    indices = list(sampler)
    loader = DataLoader(dataset, batch_size=1, sampler=sampler, pin_memory=device.type == "cuda")
    net = _unwrap(model)
    was_training = net.training
    net.eval()
    meter = SegMetric(num_classes, ignore_index, device)
    try:
        for position, (index, batch) in enumerate(zip(indices, loader)):
            images = batch["image"].to(device, non_blocking=True)
            labels = batch["label"].to(device, non_blocking=True)
            preds = predict_logits(net, images, **options).argmax(dim=1)
            meter.update(preds, labels)
            if on_prediction is not None:
                on_prediction(index, preds[0])
            if index < num_files or position < num_sunk:
                names = batch.get("name")
                stem = file_stem(names[0] if names is not None else None, index)
                picture_rgb = prediction_picture(preds[0], labels[0], palette, ignore_index, images[0], normalize)
                if index < num_files:
                    write_picture(os.path.join(out_dir, stem + ".png"), picture_rgb)
                if position < num_sunk:
                    picture_sink(stem, picture_rgb)
    finally:
        net.train(was_training)
    meter.all_reduce()
    return meter.compute()
