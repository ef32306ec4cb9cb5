"""A tiny synthetic experiment (3 classes, 32x48 images, 12 steps) for engine tests."""


def tiny_config(**sections):
    cfg = {
        "model": {"name": "deeplabv3_tiny", "options": {"aux_head": True}},
        "data": {"name": "synthetic", "num_classes": 3, "image_size": [32, 48], "num_train": 12, "num_val": 3,
                 "crop_size": [32, 40], "scale_range": [0.75, 1.25], "scale_step": 0.25},
        "loss": {"terms": {"ce": {"weight": 1.0}, "aux_ce": {"weight": 0.4}}},
        "optim": {"name": "sgd", "lr": 0.01},
        "schedule": {"max_iters": 12},
        "train": {"batch_size": 2, "num_workers": 0, "device": "cpu", "log_interval": 1, "checkpoint_interval": 3,
                  "keep_checkpoints": 2},
        "eval": {"num_visualize": 1},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg
