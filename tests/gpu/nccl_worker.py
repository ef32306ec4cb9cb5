"""One process of test_cuda.py's SyncBN check: a one-process group (NCCL on CUDA, gloo on the CPU dry run), the
trainable module as the trainer builds it for several processes (SyncBatchNorm, DDP), one SGD step.

Usage: python tests/gpu/nccl_worker.py cuda|cpu PORT      (prints one JSON line)

At world size 1 SyncBatchNorm normalises with the local statistics (torch skips the all-gather), so what this checks
is that the NCCL group comes up on this GPU, the conversion and DDP's broadcast and all-reduce run, and the step is
finite. On the CPU SyncBatchNorm refuses to run inside a process group, so the dry run stops after the conversion.
"""
import json
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def main(device_type: str, port: int) -> dict:
    from hmkd.engine.trainer import TrainableModule
    from hmkd.losses import build_criterion
    from hmkd.losses.criterion import TermContext
    from hmkd.models import build_model

    cuda = device_type == "cuda"
    backend = "nccl" if cuda else "gloo"
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method="tcp://127.0.0.1:%d" % port, rank=0, world_size=1)
    try:
        probe = torch.ones(1, device=device) * 2
        dist.all_reduce(probe)
        torch.manual_seed(0)
        student = build_model("deeplabv3_r18" if cuda else "deeplabv3_tiny", 19, aux_head=True)
        criterion = build_criterion({"ce": {"weight": 1.0}, "aux_ce": {"weight": 0.4}},
                                    TermContext(student, None, 255))
        module = nn.SyncBatchNorm.convert_sync_batchnorm(TrainableModule(student, criterion)).to(device).train()
        report = {"backend": backend, "all_reduce": float(probe.item()),
                  "sync_batchnorms": sum(isinstance(m, nn.SyncBatchNorm) for m in module.modules()),
                  "stepped": False, "losses": [], "weights_changed": False}
        if not cuda:
            return report
        wrapped = DistributedDataParallel(module, device_ids=[device.index])
        optimizer = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9)
        before = [p.detach().clone() for p in module.parameters()]
        images = torch.randn(4, 3, 256, 512, device=device)
        labels = torch.randint(0, 19, (4, 256, 512), device=device)
        optimizer.zero_grad(set_to_none=True)
        terms = wrapped(images, labels)
        sum(terms.values()).backward()
        optimizer.step()
        torch.cuda.synchronize()
        report.update(stepped=True, losses=[float(v) for v in terms.values()],
                      weights_changed=any(not torch.equal(a, b) for a, b in zip(before, module.parameters())))
        return report
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
