"""Cityscapes benchmark-server files: every prediction of an eval split as a labelIds PNG named as cityscapesScripts
expects, and one zip of them to upload.

Usage:
    writer = ServerFiles(dataset, RunDir(run_dir).server)                            # on every rank
    metrics = evaluate(model, dataset, cfg.eval, device, rank, world, on_prediction=writer.write)
    zip_path = writer.publish(RunDir(run_dir).server_zip, env.is_main)              # every rank calls it

The server, like cityscapesScripts' evalPixelLevelSemanticLabeling, takes as the prediction for
<city>_<seq>_<frame>_gtFine_labelIds.png the one file named <city>_<seq>_<frame>*.png; its pixels are labelIds
(7 road ... 33 bicycle), not train ids, at the image's full size. The files here are <image stem>.png, e.g.
berlin_000000_000019_leftImg8bit.png. Each rank writes the images of its own shard, so none is written twice; the zip
holds exactly one file per image of the split, and publishing fails naming any that is missing.
"""
import os
import zipfile
from typing import Any, List, Optional

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from hmkd.atomic import atomic_open, atomic_write_bytes
from hmkd.data.cityscapes import train_id_to_label_id


class ServerFiles:
    """Writes the server files of one dataset split into ``folder``; ``written`` lists this process's files."""

    def __init__(self, dataset: Any, folder: str):
        self.folder = folder
        self.file_names = [dataset.sample_name(i) + ".png" for i in range(len(dataset))]
        assert len(set(self.file_names)) == len(self.file_names), "Cityscapes image stems repeat within a split"
        self.lut = train_id_to_label_id()
        self.written: List[str] = []

    def write(self, index: int, pred_hw: Tensor) -> None:
        """One image's train-id prediction as its labelIds PNG (``evaluate``'s ``on_prediction``)."""
        train_ids = pred_hw.detach().to("cpu", torch.uint8).numpy()
        ok, encoded = cv2.imencode(".png", cv2.LUT(np.ascontiguousarray(train_ids), self.lut))
        assert ok, "OpenCV failed to encode a uint8 PNG"
        name = self.file_names[index]
        atomic_write_bytes(os.path.join(self.folder, name), encoded.tobytes())
        self.written.append(name)

    def publish(self, zip_path: str, is_main: bool = True) -> Optional[str]:
        """After every rank has written its shard (a barrier when distributed), the main rank zips the split's files,
        flat and uncompressed (PNGs are compressed already), atomically; returns the zip's path there, else None."""
        if dist.is_available() and dist.is_initialized():
            dist.barrier()
        if not is_main:
            return None
        missing = [n for n in self.file_names if not os.path.isfile(os.path.join(self.folder, n))]
        if missing:
            raise FileNotFoundError("%d of %d server files are missing in %s (first: %s); evaluate again"
                                    % (len(missing), len(self.file_names), self.folder, missing[0]))
        with atomic_open(zip_path) as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
            for name in self.file_names:
                archive.write(os.path.join(self.folder, name), arcname=name)
        return zip_path
