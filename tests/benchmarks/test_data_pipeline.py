import numpy as np

from hmkd.benchmarks import data_pipeline
from hmkd.data import build_dataset, sample_rng
from hmkd.data.cityscapes import EVAL_LABEL_IDS


def test_the_generated_pair_is_a_valid_cityscapes_sample(tmp_path):
    image_path, label_path = data_pipeline.write_pair(str(tmp_path))
    dataset = build_dataset({"name": "cityscapes", "root": str(tmp_path), "crop_size": [512, 1024],
                             "scale_range": [0.5, 2.0], "scale_step": 0.1, "validate": "full"}, split="train", seed=0)
    image, label = dataset.load(0)
    assert image.shape == (1024, 2048, 3) and label.shape == (1024, 2048)
    raw = data_pipeline.street_scene()[1]
    assert set(np.unique(raw)) <= set(EVAL_LABEL_IDS) | {7, 23}
    assert len(np.unique(raw)) >= 5  # several regions, so the label PNG compresses like a real one


def test_balanced_keys_cover_every_scale_equally(tmp_path):
    data_pipeline.write_pair(str(tmp_path))
    dataset = build_dataset({"name": "cityscapes", "root": str(tmp_path), "crop_size": [512, 1024],
                             "scale_range": [0.5, 2.0], "scale_step": 0.1}, split="train", seed=0)
    keys = data_pipeline.balanced_keys(dataset, 2)
    transform = dataset.transform
    drawn = [transform.sample_params(sample_rng(0, epoch, 0), 1024, 2048)["scale"] for epoch, _ in keys]
    assert len(keys) == 2 * len(transform.scales) == 32
    assert sorted(set(drawn)) == sorted(float(s) for s in transform.scales)
    assert all(drawn.count(s) == 2 for s in set(drawn))
