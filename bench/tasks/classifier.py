"""The reference land-cover classifier: a small ResNet trained to survive what codecs do to tiles.

Written here (torchvision is unusable beside this torch): a 3×3 stem, one
residual block of two 3×3 convolutions per stage, global average pooling and
a linear layer, so it takes any image size. Trained on the train split of a
dataset with the suite's own classical codecs, blur and noise as
augmentation (`bench.tasks.augment`), selected on val, scored on test once;
the benchmark then runs it unchanged on every codec's decoded images (the
`fixed` protocol), the same for every codec.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

from bench.assets import ASSET_ROOT, load_torch, refuse_committed
from bench.files import sha256_of
from bench.workers import heartbeat

CLASSIFIER_DIR = ASSET_ROOT / "codecs" / "classifier"


@dataclasses.dataclass(frozen=True)
class Network:
    """A residual network for small tiles: channels per stage, stem width and stride."""

    widths: tuple[int, ...]
    stem: int = 32
    stem_stride: int = 1

    def describe(self) -> str:
        stages = "/".join(map(str, self.widths))
        return (f"ResNet: 3×3 stem {self.stem} ch stride {self.stem_stride}, one basic block per stage "
                f"({stages} ch, stride 2 each), GAP, linear")  # fmt: skip


NETWORKS = {
    "resnet-s1-32": Network((32, 64, 128, 256)),
    "resnet-s2-48": Network((48, 96, 192, 384), stem_stride=2),
    "resnet-s2-64": Network((64, 128, 256, 512), stem_stride=2),
}
DEFAULT_NETWORK = "resnet-s1-32"  # what the screening on val chose (scripts/train_classifier.sh)


def build(n_classes: int, network: str = DEFAULT_NETWORK):
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(y + self.shortcut(x))

    config = NETWORKS[network]
    layers = [nn.Conv2d(3, config.stem, 3, config.stem_stride, 1, bias=False), nn.BatchNorm2d(config.stem),
              nn.ReLU(inplace=True)]  # fmt: skip
    channels = config.stem
    for width in config.widths:
        layers.append(Block(channels, width, 2))
        channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, n_classes)]
    return nn.Sequential(*layers)


# Test-time views: the dihedral transforms (quarter turns, mirrored) whose softmax a prediction averages. Tiles have no
# up, so each view is as valid as the original; a card names the set its val split chose (`select_views`).
VIEWS: dict[str, tuple[tuple[int, bool], ...]] = {
    "none": ((0, False),),
    "flips-4": ((0, False), (0, True), (2, False), (2, True)),
    "dihedral-8": tuple((turns, mirrored) for turns in range(4) for mirrored in (False, True)),
}


def _view(images: np.ndarray, turns: int, mirrored: bool) -> np.ndarray:
    images = np.rot90(images, turns, axes=(1, 2))
    return images[:, :, ::-1] if mirrored else images


def _normalised(images: np.ndarray, mean, std):
    """N×H×W×3 uint8 images as the network's normalised N×3×H×W float tensor."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    return (x - torch.as_tensor(mean)[None, :, None, None]) / torch.as_tensor(std)[None, :, None, None]


def _probabilities(model, x: np.ndarray, mean, std, views: str):
    """Softmax of `model` on N×H×W×3 uint8 `x`, averaged over the test-time `views`."""
    import torch

    total = 0
    with torch.no_grad():
        for turns, mirrored in VIEWS[views]:
            total = total + torch.softmax(model(_normalised(_view(x, turns, mirrored), mean, std)), 1)
    return total / len(VIEWS[views])


@dataclasses.dataclass(frozen=True)
class Classifier:
    """A loaded classifier: the network, its class names, input normalisation and test-time views."""

    model: object
    classes: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    path: Path
    views: str = "none"
    identity: str = ""  # what its predictions in a results database are tagged with (`identity`)
    _remembered: dict[str, str] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def inputs(self, images) -> object:
        """H×W×3 uint8 images of equal size as the network's normalised N×3×H×W float tensor."""
        return _normalised(np.stack(images), self.mean, self.std)

    def predict(self, images: list[np.ndarray]) -> list[str]:
        """Class names predicted for H×W×3 uint8 images of equal size (softmax averaged over the card's views)."""
        scores = _probabilities(self.model, np.stack(images), self.mean, self.std, self.views)
        return [self.classes[i] for i in scores.argmax(1).tolist()]

    def fine_tuned(self, images: np.ndarray, labels: list[str], *, steps: int, seed: int, batch_size: int = 64,
                   lr: float = 0.01) -> Classifier:  # fmt: skip
        """A copy whose linear classifier is fine-tuned on `images` (N×H×W×3 uint8) for `steps` SGD steps: Nesterov
        momentum, learning rate decaying linearly to 0, label smoothing 0.1, flips and 90° rotations (tiles have no
        up). Seeded.

        Features and batch-norm statistics stay the reference training's: on 20 images per fold, adapting the
        whole network cost 6–10 points of accuracy against the fixed classifier, the linear layer alone 2–6.
        """
        import copy

        import torch

        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        model = copy.deepcopy(self.model).eval()  # batch-norm statistics stay the reference training's
        head = model[-1]  # only the linear classifier adapts: few decoded images would overfit the features
        for parameter in model.parameters():
            parameter.requires_grad_(parameter is head.weight or parameter is head.bias)
        target = torch.tensor([self.classes.index(label) for label in labels])
        optimizer = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / max(steps, 1))
        for _ in range(steps):
            chosen = rng.integers(len(images), size=min(batch_size, len(images)))
            batch = np.rot90(images[chosen], int(rng.integers(4)), axes=(1, 2))
            batch = batch[:, :, ::-1] if rng.random() < 0.5 else batch
            loss = torch.nn.functional.cross_entropy(model(self.inputs(batch)), target[chosen], label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            heartbeat()  # in a pool worker, the time limit applies per step
        return dataclasses.replace(self, model=model.eval(), _remembered={})

    def warm_up(self) -> None:
        """One forward pass on a blank tile: torch sets up its kernels on the first call (~1 s), not in a task."""
        self.predict([np.zeros((64, 64, 3), np.uint8)])

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


def matching(dataset: str, classes: list[str]) -> str | None:
    """The committed classifier for a labelled dataset: its own, else one whose classes cover all of its labels.

    A user's `folder:` of EuroSAT-like tiles in class folders named as
    EuroSAT's gets the EuroSAT classifier; anything else gets none.
    """
    if path_for(dataset).with_suffix(".json").is_file():
        return dataset
    for card_path in sorted(CLASSIFIER_DIR.glob("*.json")):
        if set(classes) <= set(json.loads(card_path.read_text()).get("classes", [])):
            return card_path.stem
    return None


def _identity(dataset: str, card: dict) -> str:
    return f"{dataset} sha256:{card['sha256'][:16]} views:{card.get('views', 'none')}"


def identity(dataset: str) -> str | None:
    """What predictions by the committed classifier of `dataset` are tagged with: its name, weights and views."""
    card_path = path_for(dataset).with_suffix(".json")
    return _identity(dataset, json.loads(card_path.read_text())) if card_path.is_file() else None


def _fold_batch_norms(module) -> None:
    """Fold each batch norm into the convolution registered just before it (as `build` registers them, in data-flow
    order), in place: inference only, 1.4× faster on a CPU."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    children = list(module.named_children())
    for (name, child), (next_name, following) in zip(children, children[1:]):
        if isinstance(child, nn.Conv2d) and isinstance(following, nn.BatchNorm2d):
            setattr(module, name, fuse_conv_bn_eval(child, following))
            setattr(module, next_name, nn.Identity())
    for child in module.children():
        _fold_batch_norms(child)


def _from_card(path: Path, card: dict) -> Classifier:
    state = load_torch(path, card["sha256"])
    model = build(len(card["classes"]), card["network"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["state_dict"].items()})
    model.eval()
    _fold_batch_norms(model)
    return Classifier(model, tuple(card["classes"]), np.array(card["mean"], np.float32),
                      np.array(card["std"], np.float32), path, card.get("views", "none"),
                      _identity(path.stem, card))  # fmt: skip


@functools.lru_cache(maxsize=4)
def load(dataset: str) -> Classifier | None:
    """The committed classifier of `dataset`, verified against its card; None when there is none."""
    path = path_for(dataset)
    card_path = path.with_suffix(".json")
    if not card_path.is_file():
        return None
    return _from_card(path, json.loads(card_path.read_text()))


def _arrays(dataset, split: str, seed: int, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from bench.images import read_rgb

    records = dataset.select(split, None, seed)
    images = np.stack([read_rgb(r.path)[0] for r in records])
    return images, np.array([classes.index(r.label) for r in records])


def _through(codec_name: str, quality: float, images: np.ndarray) -> np.ndarray:
    from bench.codecs import get_codec

    codec = get_codec(codec_name)
    return np.stack([codec.decode(codec.encode(image, quality)) for image in images])


# The decoded versions the card and the selection score: what the targets name.
PROBES = {"original": None, "jpeg q50": ("jpeg", 50), "webp q50": ("webp", 50)}


def _probe_sets(images: np.ndarray) -> dict[str, np.ndarray]:
    return {name: images if spec is None else _through(*spec, images) for name, spec in PROBES.items()}


def _accuracy(model, images: np.ndarray, labels: np.ndarray, mean, std, views: str = "none") -> float:
    model.eval()
    correct = 0
    for start in range(0, len(images), 256):
        scores = _probabilities(model, images[start : start + 256], mean, std, views)
        correct += int((scores.argmax(1).numpy() == labels[start : start + 256]).sum())
    model.train()
    return correct / len(images)


def _accuracies(model, probes: dict[str, np.ndarray], labels: np.ndarray, mean, std,
                views: str = "none") -> dict[str, float]:  # fmt: skip
    return {name: round(_accuracy(model, images, labels, mean, std, views), 5) for name, images in probes.items()}


def select_views(path: Path, data_dir: Path | None = None, *, force: bool = False) -> dict:
    """Choose the test-time views of the classifier at `path` on the val split and write them into its card.

    Each set of `VIEWS` is scored on the val tiles (original, JPEG q50, WebP q50). Every view multiplies the
    classifier's cost, so the choice is the fewest views whose mean val accuracy is within one standard error of the
    best (the one-standard-error rule). The test split is then scored once, with the chosen views; the card keeps
    the one-view accuracies beside. The committed classifier's card changes only with `force`.
    """
    from bench.datasets import load_dataset

    path = Path(path)
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    refuse_committed(path, path_for(card["dataset"]), "the committed reference classifier", force)
    loaded = _from_card(path, card)
    model, mean, std = loaded.model, loaded.mean, loaded.std
    dataset = load_dataset(card["dataset"], data_dir)
    classes = list(card["classes"])
    val_x, val_y = _arrays(dataset, "val", card["split_seed"], classes)
    val_probes = _probe_sets(val_x)
    val = {views: _accuracies(model, val_probes, val_y, mean, std, views) for views in VIEWS}
    means = {views: sum(accuracies.values()) / len(accuracies) for views, accuracies in val.items()}
    best = max(means.values())
    standard_error = math.sqrt(best * (1 - best) / (len(val_x) * len(val_probes)))
    chosen = next(views for views in VIEWS if means[views] >= best - standard_error)  # VIEWS go from fewest
    test_x, test_y = _arrays(dataset, "test", card["split_seed"], classes)
    card.setdefault("val_accuracy_one_view", card["val_accuracy"])
    card.setdefault("test_accuracy_one_view", card["test_accuracy"])
    card.update({
        "views": chosen, "views_val_accuracy": val,
        "views_selection": "the fewest test-time views (softmax averaged) whose mean val accuracy over original, JPEG "
                           f"q50 and WebP q50 tiles is within one standard error ({standard_error:.4f}) of the best; "
                           "test scored once, with them",
        "val_accuracy": val[chosen],
        "test_accuracy": _accuracies(model, _probe_sets(test_x), test_y, mean, std, chosen),
    })  # fmt: skip
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return card


def train(dataset_name: str = "eurosat", data_dir: Path | None = None, *, out: Path, network: str = DEFAULT_NETWORK,
          epochs: int = 30, batch_size: int = 128, lr: float = 0.1, seed: int = 0, split_seed: int = 0,
          copies: int = 2, threads: int = 0, cache: Path | None = None, force: bool = False) -> Path:  # fmt: skip
    """Train a robust classifier on the train split; select the epoch on val; write checkpoint and card.

    Each step draws, per tile, the original (40%) or one of `copies` decoded
    versions through the suite's classical codecs, then applies flips,
    rotations, blur, noise and colour jitter (`bench.tasks.augment`). SGD
    with Nesterov momentum, one-cycle schedule, label smoothing 0.1. The
    selected epoch has the best mean val accuracy over the original,
    JPEG q50 and WebP q50 val tiles; the test split is only scored, once,
    at the end. Progress is saved after every epoch to ``<out>.partial.pt``
    and a rerun with the same arguments resumes from it. The committed
    classifier is replaced only with `force`.
    """
    import torch
    from tqdm import tqdm

    from bench.datasets import load_dataset
    from bench.tasks.augment import CLASSICAL_FOR_AUGMENTATION, degrade, reencoded_copies

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    out = Path(out)
    refuse_committed(out, path_for(dataset_name), "the committed reference classifier", force)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial.pt")
    dataset = load_dataset(dataset_name, data_dir)
    classes = dataset.classes
    started = time.time()
    train_x, train_y = _arrays(dataset, "train", split_seed, classes)
    val_x, val_y = _arrays(dataset, "val", split_seed, classes)
    cache_path = (cache or out.parent) / f"{dataset_name}-split{split_seed}-reencoded{copies}-seed{seed}.npy"
    if cache_path.is_file() and np.load(cache_path, mmap_mode="r").shape == (copies, *train_x.shape):
        pool = np.load(cache_path)
    else:
        pool = reencoded_copies(train_x, copies, seed)
        np.save(cache_path, pool)
    val_probes = _probe_sets(val_x)
    mean = torch.from_numpy(train_x.reshape(-1, 3).mean(0) / 255.0).float()
    std = torch.from_numpy(train_x.reshape(-1, 3).std(0) / 255.0).float()
    model = build(len(classes), network).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps_per_epoch = len(train_x) // batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    curve, best, best_state, first = [], -1.0, None, 1
    if partial.is_file():
        saved = torch.load(partial, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        curve, best, best_state = saved["curve"], saved["best"], saved["best_state"]
        first = len(curve) + 1
        print(f"resuming {partial} after epoch {first - 1}", flush=True)
    sources = torch.from_numpy(np.concatenate([train_x[None], pool])).permute(0, 1, 4, 2, 3).contiguous()
    labels = torch.from_numpy(train_y)
    for epoch in range(first, epochs + 1):
        epoch_started = time.time()
        generator = torch.Generator().manual_seed(seed * 1000 + epoch)  # per epoch: a resumed run draws the same
        order = torch.randperm(len(train_x), generator=generator)
        for start in tqdm(range(0, steps_per_epoch * batch_size, batch_size), desc=f"epoch {epoch}", mininterval=30):
            index = order[start : start + batch_size]
            original = torch.rand(len(index), generator=generator) < 0.4
            copy = 1 + torch.randint(copies, (len(index),), generator=generator)
            x = sources[torch.where(original, 0, copy), index].float().div_(255.0)
            x = degrade(x, generator)
            x = ((x - mean[None, :, None, None]) / std[None, :, None, None]).contiguous(
                memory_format=torch.channels_last)
            loss = torch.nn.functional.cross_entropy(model(x), labels[index], label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        val = _accuracies(model, val_probes, val_y, mean, std)
        score = sum(val.values()) / len(val)
        curve.append({"epoch": epoch, "loss": round(loss.item(), 4), "val": val,
                      "seconds": round(time.time() - epoch_started)})  # fmt: skip
        print(f"epoch {epoch}: val {val} (mean {score:.4f})", flush=True)
        if score > best:
            best = score
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                    "curve": curve, "best": best, "best_state": best_state}, partial)  # fmt: skip
    half = {k: v.half() if v.is_floating_point() else v for k, v in best_state.items()}
    torch.save({"state_dict": half}, out)
    # the card's accuracies are those of the saved (fp16) weights, as the benchmark will load them
    reloaded = build(len(classes), network)
    reloaded.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in half.items()})
    test_x, test_y = _arrays(dataset, "test", split_seed, classes)
    selected = max(curve, key=lambda row: sum(row["val"].values()))
    card = {
        "network": network, "architecture": NETWORKS[network].describe(),
        "parameters": sum(p.numel() for p in reloaded.parameters()),
        "dataset": dataset_name, "data_source": dataset.source, "classes": classes,
        "split_seed": split_seed, "train_images": len(train_x), "val_images": len(val_x), "test_images": len(test_x),
        "epochs": epochs, "selected_epoch": selected["epoch"],
        "selection": "best mean val accuracy over original, JPEG q50 and WebP q50 tiles; test scored once, at the end",
        "batch_size": batch_size, "lr": lr,
        "recipe": "SGD (Nesterov 0.9, wd 5e-4), one-cycle, label smoothing 0.1; per tile: original (40%) or one of "
                  f"{copies} re-encoded copies through {', '.join(CLASSICAL_FOR_AUGMENTATION)} at a quality drawn "
                  "from each codec's sweep; then flips, 90° rotations, Gaussian blur σ 0.3–1.5 (p 0.3), "
                  "noise σ ≤ 5 levels (p 0.3), brightness/contrast ±10%",
        "seed": seed, "mean": mean.tolist(), "std": std.tolist(),
        "val_accuracy": _accuracies(reloaded, val_probes, val_y, mean, std),
        "test_accuracy": _accuracies(reloaded, _probe_sets(test_x), test_y, mean, std),
        "val_curve": curve,
        "sha256": sha256_of(out), "bytes": out.stat().st_size, "weights_dtype": "float16",
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "trained_on": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "train_seconds": round(time.time() - started), "command": "python -m bench " + " ".join(sys.argv[1:]),
    }  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    partial.unlink()
    select_views(out, data_dir, force=force)
    return out
