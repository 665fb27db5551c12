"""Training learned codecs: ``python -m bench train --arch cvae --lmbda 0.0067 --quality 3``.

CompressAI's rate–distortion recipe: loss = λ·255²·MSE + bpp (bpp estimated
from the likelihoods while training), Adam on the networks, a separate Adam on
the entropy bottleneck's quantiles minimising the auxiliary loss. Images are
the seeded train split of a dataset (random flips), model selection on the val
split only (the test split is never touched). The run is resumable: the last
state is saved every `--val-every` steps in the work directory and picked up
by the same command. The result is a checkpoint in ``codecs/<arch>/`` and its
card, with val bpp/PSNR measured on real bitstreams of the selected weights.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from bench.assets import refuse_committed
from bench.codecs import checkpoints
from bench.config import ConfigError
from bench.codecs.learned import ARCHITECTURES, unusable_device
from bench.datasets import load_dataset
from bench.images import read_rgb


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    arch: str
    lmbda: float
    quality: int
    config: dict
    dataset: str = "eurosat"
    data_dir: Path | None = None
    split_seed: int = 0
    seed: int = 0
    steps: int = 10_000
    batch_size: int = 16
    lr: float = 1e-4
    val_every: int = 500
    val_limit: int = 500
    init: Path | None = None  # fine-tune from this checkpoint (e.g. another λ of the same architecture)
    out: Path = Path("runs/codecs")  # writes <out>/<arch>/<arch>-q<k>.pt and its card
    force: bool = False  # allow replacing a committed checkpoint (when `out` is the repository's codecs/)
    work: Path = Path("runs/train")
    threads: int = 0
    device: str = "cpu"  # "cuda" trains on a GPU; the checkpoint is moved to the CPU before its entropy tables are built
    # Task-aware training (the seed's recipe): loss = λrec·MSE + λbpp·bpp + λclass·CE of a latent head on ŷ.
    lambda_class: float = 0.0
    lambda_rec: float = 10.0
    lambda_bpp: float = 0.075


RESUMED_ONLY_WITH = ("arch", "lmbda", "quality", "config", "dataset", "split_seed", "seed", "steps", "batch_size", "lr",
                     "val_limit", "init", "lambda_class", "lambda_rec", "lambda_bpp")
"""What a resumed training must share with the one that saved its state: all the card claims (where it runs, how
often it validates and where it writes may change)."""


def _setup(config: TrainConfig) -> dict:
    return {key: str(value.resolve()) if isinstance(value, Path) else value  # --init, however it is written
            for key, value in dataclasses.asdict(config).items() if key in RESUMED_ONLY_WITH}  # fmt: skip


SELECTION_TOLERANCE = 0.005
"""The final state is kept when its val loss is within this fraction of the best: a fine-tune's loss flattens while
its rate still walks to the new λ's operating point (cvae q1: loss within ±0.7% from step 2,000 to 8,000 while the
val bpp fell from 0.141 to 0.117), and the best-loss state would stop it half way."""


def selected_step(curve: list[dict], *, tolerance: float = SELECTION_TOLERANCE) -> int:
    """The step whose state a training keeps: the last one if its val loss is within `tolerance` (a fraction) of the
    best, else the best (the first of equal ones)."""
    best = min(curve, key=lambda point: point["loss"])
    last = curve[-1]
    return last["step"] if last["loss"] <= best["loss"] * (1 + tolerance) else best["step"]


def load_split(config: TrainConfig, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The `split` images of the dataset as one N×H×W×3 uint8 array (equal-size tiles) and class indices."""
    dataset = load_dataset(config.dataset, config.data_dir)
    records = dataset.select(split, limit, config.split_seed)
    if not records:
        raise ConfigError(f"{config.dataset}: its {split} split is empty in {dataset.source}; pass --data-dir with the whole dataset")
    classes = dataset.classes
    labels = np.array([classes.index(r.label) if r.label in classes else -1 for r in records])
    return np.stack([read_rgb(r.path)[0] for r in records]), labels


def rd_loss(output: dict, target, lmbda: float) -> tuple:
    """(loss, mse, bpp) of CompressAI's rate–distortion objective."""
    import torch

    n, _, h, w = target.shape
    bpp = sum(torch.log(l).sum() for l in output["likelihoods"].values()) / (-math.log(2) * n * h * w)
    mse = torch.mean((output["x_hat"] - target) ** 2)
    return lmbda * 255**2 * mse + bpp, mse, bpp


def _batches(images: np.ndarray, labels: np.ndarray, batch_size: int, generator):
    import torch

    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    targets = torch.from_numpy(labels)
    while True:
        index = torch.randint(len(data), (batch_size,), generator=generator)
        batch = data[index].float().div_(255.0)
        if torch.rand((), generator=generator) < 0.5:
            batch = batch.flip(-1)
        if torch.rand((), generator=generator) < 0.5:
            batch = batch.flip(-2)
        yield batch, targets[index]


def task_loss(output: dict, target, labels, logits, config: TrainConfig) -> tuple:
    """(loss, mse, bpp) of the seed's task-aware objective λrec·MSE + λbpp·bpp + λclass·CE."""
    import torch

    _, mse, bpp = rd_loss(output, target, 0.0)
    ce = torch.nn.functional.cross_entropy(logits, labels)
    return config.lambda_rec * mse + config.lambda_bpp * bpp + config.lambda_class * ce, mse, bpp


def _evaluate(model, head, images: np.ndarray, labels: np.ndarray, config: TrainConfig) -> dict:
    """Validation loss (the training objective, in eval mode), its bpp (likelihood estimate) and PSNR."""
    import torch

    model.eval()
    totals = {"loss": 0.0, "mse": 0.0, "bpp": 0.0}
    with torch.no_grad():
        for start in range(0, len(images), 64):
            x = torch.from_numpy(images[start : start + 64]).permute(0, 3, 1, 2).float().to(config.device) / 255.0
            targets = torch.from_numpy(labels[start : start + 64]).to(config.device)
            loss, mse, bpp = _loss(model, head, x, targets, config)
            for name, value in (("loss", loss), ("mse", mse), ("bpp", bpp)):
                totals[name] += float(value) * len(x)
    model.train()
    means = {name: total / len(images) for name, total in totals.items()}
    return {"loss": means["loss"], "bpp": means["bpp"], "psnr": 10 * math.log10(1 / max(means["mse"], 1e-12))}


def _loss(model, head, x, labels, config: TrainConfig) -> tuple:
    if head is None:
        return rd_loss(model(x), x, config.lmbda)
    captured = {}
    handle = model.g_s.register_forward_pre_hook(lambda module, inputs: captured.update(y_hat=inputs[0]))
    try:
        output = model(x)
    finally:
        handle.remove()
    return task_loss(output, x, labels, head(captured["y_hat"]), config)


def _real_val_metrics(config: TrainConfig, checkpoint: checkpoints.Checkpoint, images: np.ndarray) -> dict:
    """bpp and PSNR of the saved checkpoint on real bitstreams of the val images."""
    from bench import metrics
    from bench.codecs import learned

    model = learned.model_from_checkpoint(checkpoint)
    sizes, psnrs = [], []
    for start in range(0, len(images), 64):
        batch = list(images[start : start + 64])
        for image, data in zip(batch, learned.encode_batch(config.arch, batch, config.quality, model=model)):
            sizes.append(metrics.bpp(len(data), image.shape))
            psnrs.append(min(metrics.psnr(image, learned.decode(data, model=model)), metrics.PSNR_CAP_DB))
    return {"val_bpp": float(np.mean(sizes)), "val_psnr": float(np.mean(psnrs)), "val_images": len(images)}


def _machine() -> str:
    import platform

    import torch

    device = "cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name()
    return f"{platform.machine()} {platform.processor() or ''}, {torch.get_num_threads()} torch thread(s), {device}".strip()


def train(config: TrainConfig) -> Path:
    """Train (or resume) and write the checkpoint and its card; the checkpoint's path."""
    import torch
    from tqdm import tqdm

    problem = unusable_device(config.device)
    if problem:
        raise ConfigError(f"--device {config.device}: {problem}")
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    name = f"{config.arch}-q{config.quality}"
    refuse_committed(Path(config.out) / config.arch / f"{name}.pt", checkpoints.COMMITTED_DIR / config.arch / f"{name}.pt",
                     "a committed checkpoint", config.force)  # fmt: skip
    work = Path(config.work)
    work.mkdir(parents=True, exist_ok=True)
    last_path = work / f"{name}.last.pt"

    train_images, train_labels = load_split(config, "train")
    val_images, val_labels = load_split(config, "val", config.val_limit)
    model = ARCHITECTURES[config.arch].build(config.config)
    head = None
    if config.lambda_class > 0:
        from bench.tasks.latent import latent_head

        head = latent_head(config.config.get("latent_channels") or config.config["M"], int(train_labels.max()) + 1)
    if config.init is not None:
        init = checkpoints.from_card(Path(config.init))
        state = checkpoints.load_state(init)  # verified by its card
        try:
            checkpoints.restore_weights(model, state["state_dict"])
        except RuntimeError:  # another architecture or other sizes: PyTorch's message lists every tensor
            raise ConfigError(f"--init {config.init}: its weights ({init.arch}, {init.card.get('config')}) do not fit "
                              f"a {config.arch} with {config.config}; give its sizes") from None
    model.to(config.device, memory_format=torch.channels_last)  # measured +15% steps/s on one CPU thread (N=64/M=192)
    if head is not None:
        head.to(config.device)
    main_params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    main_params += list(head.parameters()) if head is not None else []
    aux_params = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    optimizer = torch.optim.Adam(main_params, lr=config.lr)
    aux_optimizer = torch.optim.Adam(aux_params, lr=1e-3)
    step, best, best_step, best_state, best_head, curve, elapsed = 0, math.inf, 0, None, {}, [], 0.0
    if last_path.exists():  # resume
        saved = torch.load(last_path, map_location="cpu", weights_only=True)
        differ = [f"{key} {saved['setup'].get(key)} (saved) vs {value} (now)" for key, value in _setup(config).items()
                  if "setup" in saved and saved["setup"].get(key) != value]  # fmt: skip
        if differ:
            raise ConfigError(f"{last_path} holds a training of another setup: {', '.join(differ)}; "
                              "use another --work, or delete it to start over")  # fmt: skip
        model.load_state_dict(saved["model"])
        if head is not None:
            head.load_state_dict(saved["head"])
        optimizer.load_state_dict(saved["optimizer"])
        aux_optimizer.load_state_dict(saved["aux_optimizer"])
        generator.set_state(saved["generator"])
        step, best, best_step, best_state = saved["step"], saved["best"], saved["best_step"], saved["best_state"]
        best_head = saved["best_head"]
        curve, elapsed = saved.get("curve", []), saved.get("elapsed", 0.0)

    started = time.time()
    batches = _batches(train_images, train_labels, config.batch_size, generator)
    model.train()
    bar = tqdm(total=config.steps, initial=step, desc=name, unit="step", dynamic_ncols=True)
    while step < config.steps:
        lr = config.lr * (0.1 if step >= 0.8 * config.steps else 1.0)  # last 20% of steps at lr/10
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, labels = next(batches)
        x, labels = x.to(config.device, memory_format=torch.channels_last), labels.to(config.device)
        loss, mse, bpp = _loss(model, head, x, labels, config)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{name}: loss is {float(loss)} at step {step}; lower --lr and resume")
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main_params, 1.0)
        optimizer.step()
        aux_loss = model.aux_loss()
        aux_optimizer.zero_grad()
        aux_loss.backward()
        aux_optimizer.step()
        step += 1
        bar.update()
        if step % config.val_every == 0 or step == config.steps:
            measured = _evaluate(model, head, val_images, val_labels, config)
            val = measured["loss"]
            curve.append({"step": step, **{k: round(v, 5) for k, v in measured.items()}})
            if val < best:
                best, best_step = val, step
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best_head = {k: v.detach().clone() for k, v in head.state_dict().items()} if head is not None else {}
            bar.set_postfix(loss=f"{float(loss):.3f}", bpp=f"{float(bpp):.3f}", val=f"{val:.3f}", best=best_step)
            state = {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "aux_optimizer": aux_optimizer.state_dict(), "generator": generator.get_state(),
                "step": step, "best": best, "best_step": best_step, "best_state": best_state,
                "head": head.state_dict() if head is not None else {}, "best_head": best_head,
                "curve": curve, "elapsed": elapsed + time.time() - started, "setup": _setup(config),
            }  # fmt: skip
            torch.save(state, work / f"{name}.tmp")
            (work / f"{name}.tmp").replace(last_path)
    bar.close()

    chosen = selected_step(curve)
    if chosen != step:
        model.load_state_dict(best_state)
        if head is not None:
            head.load_state_dict(best_head)
    model.to("cpu", memory_format=torch.contiguous_format)  # entropy tables built on the CPU, where streams are coded
    model.eval()
    with torch.no_grad():
        model.update(force=True)
    target = Path(config.out) / config.arch
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}.pt"
    learned_names = {name for name, _ in model.named_parameters()}
    half = {k: v.half() if k in learned_names else v for k, v in model.state_dict().items()}  # buffers stay exact
    # the task-aware latent head travels with the codec (a receiver can classify ŷ with it)
    head_state = head.state_dict() if head is not None else {}
    head_half = {k: (v.half() if v.is_floating_point() else v).cpu() for k, v in head_state.items()}
    torch.save({"arch": config.arch, "config": config.config, "lmbda": config.lmbda, "state_dict": half,
                "class_head": head_half}, path)  # fmt: skip
    card = {
        "arch": config.arch, "config": config.config, "quality": config.quality, "lmbda": config.lmbda,
        "loss": (
            f"{config.lambda_rec} * MSE + {config.lambda_bpp} * bpp + {config.lambda_class} * CE(latent head on y_hat)"
            if config.lambda_class > 0 else "lmbda * 255^2 * MSE + bpp (likelihood estimate)"
        ) + "; aux loss on quantiles",
        "dataset": config.dataset, "data_source": load_dataset(config.dataset, config.data_dir).source,
        "split": "train (70%) for training, val (10%) for selection; test untouched", "split_seed": config.split_seed,
        "train_images": len(train_images), "seed": config.seed, "steps": config.steps, "batch_size": config.batch_size,
        "lr": config.lr, "lr_schedule": "constant, x0.1 for the last 20% of steps",
        "init": str(config.init) if config.init else None, "selected_step": chosen,
        "selection": f"the last step if its val loss is within {SELECTION_TOLERANCE:.1%} of the best, else the best",
        "val_loss": next(p["loss"] for p in curve if p["step"] == chosen), "sha256": checkpoints.sha256_of(path), "bytes": path.stat().st_size,
        "weights_dtype": "learned parameters float16 (loaded as float32), buffers float32", "torch": torch.__version__,
        "trained_on": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "train_seconds": round(elapsed + time.time() - started), "machine": _machine(),
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "val_curve": curve,  # per validation: step, loss, bpp (likelihood estimate), PSNR on the val tiles
    }  # fmt: skip
    card_path = path.with_suffix(".json")
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    saved = checkpoints.from_card(path, "weights-dir")
    card.update(_real_val_metrics(config, saved, val_images))  # the written file, real bitstreams
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return path
