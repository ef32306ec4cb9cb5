import numpy as np
import torch
from torch import nn

from hmkd.data import EvalTransform, SyntheticDataset, TrainTransform


def test_deterministic_across_instances_and_distinct_across_splits_and_seeds():
    a, b = SyntheticDataset(6, (32, 48), 4), SyntheticDataset(6, (32, 48), 4)
    for i in range(4):
        image_a, label_a = a.load(i)
        image_b, label_b = b.load(i)
        assert image_a.dtype == np.uint8 and image_a.shape == (32, 48, 3) and label_a.shape == (32, 48)
        assert np.array_equal(image_a, image_b) and np.array_equal(label_a, label_b)
    assert not np.array_equal(a.load(0)[1], a.load(1)[1])
    assert not np.array_equal(a.load(0)[1], SyntheticDataset(6, (32, 48), 4, split="val").load(0)[1])
    assert not np.array_equal(a.load(0)[1], SyntheticDataset(6, (32, 48), 4, data_seed=1).load(0)[1])
    # The training seed changes the augmentation, never the scene.
    assert np.array_equal(a.load(0)[0], SyntheticDataset(6, (32, 48), 4, seed=9).load(0)[0])


def test_all_classes_appear_and_labels_are_in_range():
    ds = SyntheticDataset(7, (32, 48), 5)
    values = np.unique(np.concatenate([ds.load(i)[1].ravel() for i in range(5)]))
    assert set(range(7)) <= set(values.tolist())
    assert set(values.tolist()) <= set(range(7)) | {255}
    assert ds.validate("full") == 5
    item = SyntheticDataset(7, (32, 48), 5, transform=TrainTransform((24, 24)))[3]
    assert item["image"].shape == (3, 24, 24) and item["name"] == "synthetic_train_000003"


def _miou(pred, label, num_classes):
    keep = label != 255
    ious = []
    for k in range(num_classes):
        inter = ((pred == k) & (label == k) & keep).sum().item()
        union = (((pred == k) | (label == k)) & keep).sum().item()
        if union:
            ious.append(inter / union)
    return sum(ious) / len(ious)


def test_small_cnn_learns_the_classes_from_appearance():
    torch.manual_seed(0)
    num_classes = 6
    train = SyntheticDataset(num_classes, (32, 32), 64, transform=EvalTransform())
    val = SyntheticDataset(num_classes, (32, 32), 8, split="val", transform=EvalTransform())
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(16, num_classes, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    items = [train[i] for i in range(len(train))]
    images, labels = torch.stack([it["image"] for it in items]), torch.stack([it["label"] for it in items])
    for step in range(120):
        index = torch.arange(step * 8, step * 8 + 8) % len(train)
        loss = nn.functional.cross_entropy(model(images[index]), labels[index], ignore_index=255)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        val_items = [val[i] for i in range(len(val))]
        pred = model(torch.stack([it["image"] for it in val_items])).argmax(1)
    miou = _miou(pred, torch.stack([it["label"] for it in val_items]), num_classes)
    assert miou > 0.8, miou  # chance is about 1/6 pixel accuracy and well under 0.1 mIoU
