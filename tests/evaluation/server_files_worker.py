"""The evaluation processes test_server_files.py spawns (children import this by name): one rank's server files."""
import os

import torch
import torch.distributed as dist


def evaluate_into(root, weights, out_dir, rank, world_size):
    """Evaluates the val split of ``root`` with the model in ``weights``, writing this rank's server files into
    out_dir/server and, on rank 0, out_dir/server.zip; returns the metrics, the files written here and the zip."""
    from hmkd.config.schema import EvalConfig
    from hmkd.data import CityscapesDataset
    from hmkd.evaluation import evaluate
    from hmkd.evaluation.server_files import ServerFiles
    from hmkd.models import build_model, load_pretrained

    dataset = CityscapesDataset(root, "val")
    model = build_model("deeplabv3_tiny", dataset.num_classes)
    load_pretrained(model, weights, strict=True)
    writer = ServerFiles(dataset, os.path.join(out_dir, "server"))
    metrics = evaluate(model, dataset, EvalConfig(), "cpu", rank, world_size, on_prediction=writer.write)
    return {"metrics": metrics, "written": writer.written,
            "zip": writer.publish(os.path.join(out_dir, "server.zip"), rank == 0)}


def run_rank(rank, world_size, root, weights, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="file://" + init_file, rank=rank, world_size=world_size)
    try:
        result = evaluate_into(root, weights, out_dir, rank, world_size)
        torch.save(result, os.path.join(out_dir, "rank%d.pt" % rank))
    finally:
        dist.destroy_process_group()
