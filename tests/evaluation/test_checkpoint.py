"""record_for: the eval record of a model under a config; its cost, counted by mmcv or, without it, params only."""
import pytest
from engine_config import tiny_config

from hmkd.config import config_from_dict
from hmkd.data import build_dataset
from hmkd.evaluation import checkpoint, evaluate
from hmkd.models import build_model


@pytest.fixture
def evaluated():
    cfg = config_from_dict(tiny_config())
    dataset = build_dataset(cfg.data, split="val", train=False)
    model = build_model(cfg.model.name, dataset.num_classes, **cfg.model.options)
    return cfg, model, dataset, evaluate(model, dataset, cfg.eval)


def test_record_carries_protocol_training_and_cost(evaluated):
    cfg, model, dataset, metrics = evaluated
    record = checkpoint.record_for(cfg, model, dataset, metrics, "run/model.pth", step=12, train_seconds=3.14159)
    assert record.model == "deeplabv3_tiny" and record.step == 12 and record.train_seconds == 3.1
    assert record.loss_terms == ["aux_ce", "ce"] and record.teacher is None and record.mode == "whole"
    assert record.params == sum(p.numel() for p in model.parameters()) and record.flops > 0
    assert record.flops_size == [32, 40] and record.checkpoint.endswith("run/model.pth")


def test_without_a_flop_counter_the_flops_are_unknown(evaluated, monkeypatch):
    def no_mmcv(*args):
        raise ImportError("No module named 'mmcv'")

    cfg, model, dataset, metrics = evaluated
    monkeypatch.setattr(checkpoint, "model_complexity", no_mmcv)
    record = checkpoint.record_for(cfg, model, dataset, metrics)
    assert record.flops is None and record.params == sum(p.numel() for p in model.parameters())
