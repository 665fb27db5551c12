"""The reference land-cover classifier: a compact CNN trained on original (uncompressed) tiles.

Written here (no torchvision): four conv3×3–BN–ReLU–max-pool blocks (32,
64, 128, 256 channels), global average pooling, dropout and a linear layer,
so it takes any image size; ~60 M multiply-adds per 64×64 tile, small
enough to train on a CPU in minutes. Trained on the train split of a dataset, model
selection on val, accuracy on test reported in its card; the benchmark then
runs it unchanged on every codec's decoded test images, the same protocol for
every codec.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.codecs import checkpoints

CLASSIFIER_DIR = checkpoints.COMMITTED_DIR / "classifier"


def build(n_classes: int):
    from torch import nn

    def block(cin: int, cout: int) -> list:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.MaxPool2d(2)]  # fmt: skip

    return nn.Sequential(
        *block(3, 32), *block(32, 64), *block(64, 128), *block(128, 256),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(256, n_classes),
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Classifier:
    """A loaded classifier: the network, its class names and input normalisation."""

    model: object
    classes: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    path: Path
    _remembered: dict[str, str] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def predict(self, images: list[np.ndarray]) -> list[str]:
        """Class names predicted for H×W×3 uint8 images of equal size."""
        import torch

        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)
        x = (x - torch.from_numpy(self.mean)[None, :, None, None]) / torch.from_numpy(self.std)[None, :, None, None]
        with torch.no_grad():
            return [self.classes[i] for i in self.model(x).argmax(1).tolist()]

    def predict_remembered(self, keys: list[str], images: list[np.ndarray]) -> list[str]:
        """`predict`, computed once per key (an image id) for the life of this classifier.

        The originals of a sweep recur in many tasks (a learned codec has one
        task per quality over the same images); their labels do not change.
        """
        new = [index for index, key in enumerate(keys) if key not in self._remembered]
        if new:
            for index, label in zip(new, self.predict([images[index] for index in new])):
                self._remembered[keys[index]] = label
        return [self._remembered[key] for key in keys]


def path_for(dataset: str) -> Path:
    return CLASSIFIER_DIR / f"{dataset}.pt"


@functools.lru_cache(maxsize=4)
def load(dataset: str) -> Classifier | None:
    """The committed classifier of `dataset`, verified against its card; None when there is none."""
    path = path_for(dataset)
    card_path = path.with_suffix(".json")
    if not card_path.is_file():
        return None
    card = json.loads(card_path.read_text())
    state = checkpoints.load_state(checkpoints.Checkpoint("classifier", 0, path, card["sha256"], "committed", card))
    model = build(len(card["classes"]))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["state_dict"].items()})
    model.eval()
    return Classifier(model, tuple(card["classes"]), np.array(card["mean"], np.float32),
                      np.array(card["std"], np.float32), path)  # fmt: skip


def _arrays(dataset, split: str, seed: int, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from bench.images import read_rgb

    records = dataset.select(split, None, seed)
    images = np.stack([read_rgb(r.path)[0] for r in records])
    return images, np.array([classes.index(r.label) for r in records])


def _accuracy(model, images: np.ndarray, labels: np.ndarray, mean, std) -> float:
    import torch

    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), 256):
            x = torch.from_numpy(images[start : start + 256]).permute(0, 3, 1, 2).float() / 255.0
            x = (x - mean[None, :, None, None]) / std[None, :, None, None]
            correct += int((model(x).argmax(1).numpy() == labels[start : start + 256]).sum())
    model.train()
    return correct / len(images)


def train(dataset_name: str = "eurosat", data_dir: Path | None = None, epochs: int = 15, batch_size: int = 64,
          lr: float = 2e-3, seed: int = 0, split_seed: int = 0, threads: int = 0, out: Path | None = None) -> Path:  # fmt: skip
    """Train on the train split, keep the best val accuracy, write checkpoint and card (test accuracy)."""
    import torch
    from tqdm import tqdm

    from bench.datasets import load_dataset

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    dataset = load_dataset(dataset_name, data_dir)
    classes = dataset.classes
    train_x, train_y = _arrays(dataset, "train", split_seed, classes)
    val_x, val_y = _arrays(dataset, "val", split_seed, classes)
    test_x, test_y = _arrays(dataset, "test", split_seed, classes)
    mean = torch.from_numpy(train_x.reshape(-1, 3).mean(0) / 255.0).float()
    std = torch.from_numpy(train_x.reshape(-1, 3).std(0) / 255.0).float()
    model = build(len(classes))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * (len(train_x) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    data = torch.from_numpy(train_x).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(train_y)
    best, best_state, best_epoch, started = -1.0, None, 0, time.time()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(data), generator=generator)
        for start in tqdm(range(0, len(order) - batch_size + 1, batch_size), desc=f"epoch {epoch}", leave=False):
            index = order[start : start + batch_size]
            x = data[index].float().div_(255.0)
            if torch.rand((), generator=generator) < 0.5:
                x = x.flip(-1)
            x = torch.rot90(x, int(torch.randint(4, (), generator=generator)), (-2, -1))
            x = (x - mean[None, :, None, None]) / std[None, :, None, None]
            loss = torch.nn.functional.cross_entropy(model(x), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        accuracy = _accuracy(model, val_x, val_y, mean, std)
        print(f"epoch {epoch}: val accuracy {accuracy:.4f}", flush=True)
        if accuracy > best:
            best, best_epoch = accuracy, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    path = Path(out) if out else path_for(dataset_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    half = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save({"state_dict": half}, path)
    # the card's accuracies are those of the saved (fp16) weights, as the benchmark will load them
    reloaded = build(len(classes))
    reloaded.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in half.items()})
    card = {
        "architecture": "TileCNN: 4 × (conv3×3-BN-ReLU, max-pool) 32/64/128/256, GAP, dropout 0.3, linear",
        "dataset": dataset_name, "data_source": dataset.source, "classes": classes,
        "split_seed": split_seed, "train_images": len(train_x), "val_images": len(val_x), "test_images": len(test_x),
        "epochs": epochs, "selected_epoch": best_epoch, "batch_size": batch_size, "lr": lr,
        "optimizer": "AdamW (wd 1e-4), one-cycle schedule; flips and 90° rotations", "seed": seed,
        "mean": mean.tolist(), "std": std.tolist(),
        "val_accuracy": _accuracy(reloaded, val_x, val_y, mean, std),
        "test_accuracy": _accuracy(reloaded, test_x, test_y, mean, std),
        "sha256": checkpoints.sha256_of(path), "bytes": path.stat().st_size, "weights_dtype": "float16",
        "torch": torch.__version__, "trained_on": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "train_seconds": round(time.time() - started), "command": "python -m bench " + " ".join(sys.argv[1:]),
    }  # fmt: skip
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return path
