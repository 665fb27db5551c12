"""Learned codecs (CompressAI architectures and the paper CVAE) behind the codec interface.

Every stream is real: `encode` runs the model's ``compress()`` (CompressAI's
rANS coder, after ``update()`` built the entropy tables) and returns one
self-contained byte string; `decode` needs nothing else.

Stream layout::

    arch id (1 byte) | quality (1 byte) | height, width (2 × uint16, big-endian)
    | for every entropy-coded stream but the last: its length (LEB128) and bytes
    | the last stream (runs to the end)

Devices: with ``device="cuda"`` the analysis and synthesis transforms (``g_a``,
``g_s``: nearly all the arithmetic) run on the GPU; whatever decides the
coded symbols and their CDFs (quantisation, the hyperprior's ``h_a``/``h_s``,
context models, the rANS coder and its tables) runs on the CPU at both ends,
so a stream encoded on any machine decodes to the same latent on any other
(CompressAI users report streams encoded on one device decoding to garbage on
another when the hyperprior's scales are computed on different hardware).
The decoded image is the synthesis transform of that latent, equal across
devices up to float rounding (a pixel level, rarely).

Streams are in CompressAI's order: ``y`` first, then the hyperprior's ``z``
where there is one. The image is edge-padded to a multiple of the network's
down-sampling factor and the decoder crops back, so rate is counted per
native pixel. Rate accounting: ``header_bytes`` is the fixed 6-byte header
(architecture, quality and size, agreed once in a tile-based system); the
length fields and all entropy-coded streams are payload.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.codecs import checkpoints
from bench.codecs.base import Codec, CodecUnavailable, Image

HEADER_BYTES = 6
DEVICES = ("cpu", "cuda")
TRANSFORMS_ON_DEVICE = ("g_a", "g_s")
"""The modules a GPU runs (see the module docstring); every other module stays on the CPU."""


def _fixed_stages(stages: int | None) -> None:
    if stages is not None:
        raise ValueError("its down-sampling is fixed (stages apply to cvae and cvae-task only)")


def _n_m(channels: int, latent_channels: int, stages: int | None) -> dict:
    _fixed_stages(stages)
    return {"N": channels, "M": latent_channels}


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A learned-codec architecture: its stream id (never reuse one), how to build it, and its size arguments."""

    name: str
    stream_id: int
    description: str
    build: Callable[[dict], object] = dataclasses.field(repr=False)
    sizes: Callable[[int, int, int | None], dict] = dataclasses.field(default=_n_m, repr=False)
    """(transform channels, latent channels, stride-2 stages or None) → the constructor's keyword arguments."""

    def config(self, channels: int, latent_channels: int, stages: int | None = None) -> dict:
        """The constructor arguments of a model with these channel counts (and down-sampling stages, where variable).

        Raises ValueError for stages on an architecture whose down-sampling is fixed.
        """
        return self.sizes(channels, latent_channels, stages)


def _compressai_model(name: str) -> Callable[[dict], object]:
    def build(config: dict):
        from bench.codecs.compressai_compat import import_compressai

        import_compressai()
        from compressai.zoo.image import model_architectures

        return model_architectures[name](**config)

    return build


def _cvae(config: dict):
    from bench.codecs.cvae import CVAE

    return CVAE(**config)


def _cvae_sizes(channels: int, latent_channels: int, stages: int | None) -> dict:
    return {"channels": channels, "latent_channels": latent_channels, "stages": stages or 4}


def _n_only(channels: int, latent_channels: int, stages: int | None) -> dict:  # cheng2020: M = N
    _fixed_stages(stages)
    return {"N": channels}


ARCHITECTURES = {
    arch.name: arch
    for arch in (
        Architecture("cvae", 1, "CVAE of arXiv 2404.03696: no GDN, no hyperprior, factorized prior", _cvae, _cvae_sizes),
        Architecture("bmshj2018-factorized", 2, "Ballé et al. 2017/18, GDN, factorized prior", _compressai_model("bmshj2018-factorized")),
        Architecture("bmshj2018-hyperprior", 3, "Ballé et al. 2018, scale hyperprior", _compressai_model("bmshj2018-hyperprior")),
        Architecture("mbt2018-mean", 4, "Minnen et al. 2018, mean-scale hyperprior", _compressai_model("mbt2018-mean")),
        Architecture("mbt2018", 5, "Minnen et al. 2018, hyperprior + autoregressive context", _compressai_model("mbt2018")),
        Architecture("cheng2020-anchor", 6, "Cheng et al. 2020, residual blocks, context model", _compressai_model("cheng2020-anchor"), _n_only),
        Architecture("cheng2020-attn", 7, "Cheng et al. 2020 with attention", _compressai_model("cheng2020-attn"), _n_only),
        Architecture("cvae-task", 8, "CVAE fine-tuned with a classification term (task-aware)", _cvae, _cvae_sizes),
    )
}  # fmt: skip
_BY_STREAM_ID = {arch.stream_id: arch for arch in ARCHITECTURES.values()}


def unusable_device(device: str) -> str | None:
    """Why the networks cannot run on `device` here; None when they can.

    CUDA is probed in a fresh process: initialising it in this one would break
    the sweep's workers, which fork from it (torch's NVML-based check is no
    way out: where NVML cannot answer, e.g. MIG devices, it initialises CUDA).
    """
    if device not in DEVICES:
        return f"unknown device (valid: {', '.join(DEVICES)})"
    if device == "cpu":
        return None
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
                           capture_output=True, text=True)  # fmt: skip
    if probe.returncode != 0 or probe.stdout.strip() in ("", "0"):
        return "no CUDA device here (torch.cuda.device_count() is 0)"
    return None


def load_model(arch: str, quality: int, weights_dir: Path | None = None, device: str = "cpu"):
    """The model of `arch` at `quality` from the checkpoint it resolves to (see `checkpoints.resolve`)."""
    found = checkpoints.resolve(arch, weights_dir)
    if quality not in found:
        raise CodecUnavailable(f"{arch}: no checkpoint for quality {quality} (have {sorted(found) or 'none'})")
    return model_from_checkpoint(found[quality], device)


@functools.lru_cache(maxsize=16)
def model_from_checkpoint(checkpoint: checkpoints.Checkpoint, device: str = "cpu"):
    """The verified model of `checkpoint`, in eval mode, entropy tables built on the CPU, its transforms on `device`
    (`TRANSFORMS_ON_DEVICE`; cached per process and device)."""
    import torch

    if device != "cpu":
        # float32 as on the CPU: TF32 convolutions (torch's default for cuDNN) would round g_a/g_s far more coarsely
        torch.backends.cudnn.conv.fp32_precision = torch.backends.cuda.matmul.fp32_precision = "ieee"
        model = copy.deepcopy(model_from_checkpoint(checkpoint, "cpu"))
        for name in TRANSFORMS_ON_DEVICE:
            _run_on(getattr(model, name), device)
        return model

    arch = checkpoint.arch
    state = checkpoints.load_state(checkpoint)
    try:
        if checkpoint.source != "official":  # ours, with a card: the config travels in the file
            model = ARCHITECTURES[arch].build(state["config"])
            checkpoints.restore_weights(model, state["state_dict"])
        else:
            from bench.codecs.compressai_compat import import_compressai

            import_compressai()
            from compressai.zoo.image import model_architectures

            model = model_architectures[arch].from_state_dict(state)
    except (KeyError, RuntimeError, TypeError) as exc:
        raise checkpoints.CheckpointError(f"{checkpoint.path}: does not fit {arch} ({exc})") from None
    model.eval()
    with torch.no_grad():
        model.update(force=True)
    return model


def _run_on(module, device: str) -> None:
    """Move `module` to `device`; it still takes and returns CPU tensors (the copies are its only synchronisation)."""
    module.to(device)
    module.register_forward_pre_hook(lambda _, inputs: tuple(x.to(device) for x in inputs))
    module.register_forward_hook(lambda _, inputs, output: output.cpu())


def _to_tensor(images: list[Image], factor: int):
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % factor, -width % factor
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


def encode_batch(arch: str, images: list[Image], quality: int, model=None, weights_dir: Path | None = None,
                 device: str = "cpu") -> list[bytes]:
    """Encode equal-size images in one pass through the network; one stream per image.

    `model` overrides the resolved checkpoint (training evaluates its own output this way).
    """
    import torch

    height, width = images[0].shape[:2]
    if any(image.shape != images[0].shape for image in images):
        raise ValueError("encode_batch needs images of equal size")
    if max(height, width) > 0xFFFF:
        raise ValueError(f"image {height}×{width} too large for the 16-bit size header")
    model = model or load_model(arch, quality, weights_dir, device)
    with torch.no_grad():
        out = model.compress(_to_tensor(images, model.downsampling_factor))
    header = bytes([ARCHITECTURES[arch].stream_id, quality]) + height.to_bytes(2, "big") + width.to_bytes(2, "big")
    streams_per_image = zip(*out["strings"])  # CompressAI: one list per stream, one entry per image
    return [header + _pack(list(streams)) for streams in streams_per_image]


def _pack(streams: list[bytes]) -> bytes:
    return b"".join(_leb128(len(s)) + s for s in streams[:-1]) + streams[-1]


def _leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _unpack(data: bytes, count: int) -> list[bytes]:
    streams, pos = [], HEADER_BYTES
    for _ in range(count - 1):
        length, shift = 0, 0
        while True:
            if pos >= len(data):
                raise ValueError("truncated stream: length field runs past the end")
            byte = data[pos]
            length, shift, pos = length | (byte & 0x7F) << shift, shift + 7, pos + 1
            if not byte & 0x80:
                break
        if pos + length > len(data):
            raise ValueError("truncated stream: entropy-coded stream runs past the end")
        streams.append(data[pos : pos + length])
        pos += length
    return [*streams, data[pos:]]


def parse_header(data: bytes) -> tuple[str, int, int, int]:
    """(architecture, quality, height, width) of a learned-codec stream."""
    if len(data) < HEADER_BYTES:
        raise ValueError(f"stream of {len(data)} bytes is shorter than the {HEADER_BYTES}-byte header")
    if data[0] not in _BY_STREAM_ID:
        raise ValueError(f"unknown architecture id {data[0]}")
    return _BY_STREAM_ID[data[0]].name, data[1], int.from_bytes(data[2:4], "big"), int.from_bytes(data[4:6], "big")


def _prepare(streams: list[bytes], model=None, weights_dir: Path | None = None, device: str = "cpu"):
    """(model, strings, latent shape, height, width) for decompressing streams of one architecture, quality, size."""
    headers = {parse_header(data) for data in streams}
    if len(headers) != 1:
        raise ValueError("streams must share one architecture, quality and image size to be decoded together")
    ((arch, quality, height, width),) = headers
    model = model or load_model(arch, quality, weights_dir, device)
    factor = model.downsampling_factor
    shape = (-(-height // factor), -(-width // factor))
    n_streams = 2 if hasattr(model, "h_s") else 1
    strings = [list(parts) for parts in zip(*(_unpack(data, n_streams) for data in streams))]
    return model, strings, shape, height, width


def decode_batch(streams: list[bytes], model=None, weights_dir: Path | None = None, device: str = "cpu") -> list[Image]:
    """Decode streams of the same architecture, quality and image size in one pass."""
    import torch

    model, strings, shape, height, width = _prepare(streams, model, weights_dir, device)
    with torch.no_grad():
        x_hat = model.decompress(strings, shape)["x_hat"]
    images = x_hat[:, :, :height, :width].clamp(0, 1).mul(255).round().to(dtype=torch.uint8)
    return list(images.permute(0, 2, 3, 1).numpy())


def decode(data: bytes, model=None, weights_dir: Path | None = None, device: str = "cpu") -> Image:
    """The image of a learned-codec stream (`model` overrides the resolved checkpoint)."""
    return decode_batch([data], model, weights_dir, device)[0]


class _LatentReady(Exception):
    pass


def decode_latent(data: bytes, weights_dir: Path | None = None) -> np.ndarray:
    """The quantised latent ŷ (C×h×w, float32) that a receiver has before running the synthesis transform."""
    import torch

    model, strings, shape, _, _ = _prepare([data], weights_dir=weights_dir)
    captured = {}

    def grab(module, inputs):  # ŷ is g_s's input: stop before running the decoder
        captured["y_hat"] = inputs[0]
        raise _LatentReady

    handle = model.g_s.register_forward_pre_hook(grab)
    try:
        with torch.no_grad():
            model.decompress(strings, shape)
    except _LatentReady:
        pass
    finally:
        handle.remove()
    return captured["y_hat"][0].numpy()


def header_size(data: bytes) -> int:
    return HEADER_BYTES


def _found(arch: str, weights_dir: Path | None) -> dict[int, checkpoints.Checkpoint]:
    """The checkpoints of `arch`, after checking (from the installed distributions' metadata, not by importing them:
    `bench codecs`, `report` and classical sweeps must not pay torch's and CompressAI's import, ~5 s) that it can run.
    A broken install that imports badly still fails loudly, at the first encode, as error rows naming the exception."""
    from importlib import util

    for module, distribution in (("torch", "torch"), ("compressai", "compressai")):
        if util.find_spec(module) is None:
            raise ImportError(f"{distribution} is not installed")
    found = checkpoints.resolve(arch, weights_dir)
    if not found:
        raise CodecUnavailable(
            f"no checkpoints for {arch}: none committed in codecs/{arch}/ and none in the weights directory "
            f"({weights_dir or 'none given'}); train one with `python -m bench train --arch {arch} --lmbda 0.0130 --quality 4`"
        )
    return found


def _libraries() -> str:
    from importlib import metadata

    return ", ".join(f"{name} {metadata.version(name)}" for name in ("compressai", "torch"))


def _library_version(arch: str, weights_dir: Path | None) -> str:
    found = _found(arch, weights_dir)
    sources = sorted({c.source for c in found.values()})
    weights = ", ".join(f"q{q}: {c.path.name} ({c.sha256[:8]})" for q, c in sorted(found.items()))
    return f"{_libraries()}; {'/'.join(sources)} weights {weights}"


@functools.lru_cache(maxsize=256)  # once per point and process: every row stores it
def _point_version(arch: str, weights_dir: Path | None, device: str, quality: float) -> str:
    """Libraries and the checkpoint of `quality`, and the device where it is not the CPU: a GPU's transforms round
    differently, so its rows are not the CPU's rows and a resumed run must not mix them."""
    checkpoint = _found(arch, weights_dir).get(int(quality))
    on_device = f"; {'/'.join(TRANSFORMS_ON_DEVICE)} on {device}" if device != "cpu" else ""
    if checkpoint is None:
        return f"{_libraries()}; no checkpoint for q{quality:g}{on_device}"
    return f"{_libraries()}; {checkpoint.source} weights {checkpoint.path.name} ({checkpoint.sha256[:8]}){on_device}"


_POINT_VERSION = re.compile(r"(?P<libraries>[^;]+); (?P<source>[\w-]+) weights (?P<checkpoint>.+ \([0-9a-f]{8}\))")
_LADDER_VERSION = re.compile(r"(?P<libraries>[^;]+); (?P<sources>[\w/-]+) weights (?P<points>q\d+: .+)")
_LADDER_POINT = re.compile(r"q(?P<quality>\d+): (?P<checkpoint>.+? \([0-9a-f]{8}\))(?:, (?=q\d+: )|$)")


def is_version_of_point(stored: str, current: str, quality: float) -> bool:
    """Whether rows stored with version `stored` were made by the point whose version is now `current`.

    Equal strings are; so is a version written before versions were per point,
    which names every checkpoint of the ladder (``"…; committed weights q1:
    cvae-q1.pt (a7c60f6e), q3: …"``), when it names this point's checkpoint
    (file and hash) among the same libraries and sources: such a run resumes
    while that checkpoint is unchanged.
    """
    if stored == current:
        return True
    ladder, point = _LADDER_VERSION.fullmatch(stored), _POINT_VERSION.fullmatch(current)
    if ladder is None or point is None or ladder["libraries"] != point["libraries"]:
        return False
    named = {int(found["quality"]): found["checkpoint"] for found in _LADDER_POINT.finditer(ladder["points"])}
    return point["source"] in ladder["sources"].split("/") and named.get(int(quality)) == point["checkpoint"]


def _sizes(found) -> str:
    """``"; N=64, M=192"``: the channel counts the checkpoints were built with (the papers' are larger), from their cards."""
    configs = {tuple(c.card["config"].items()) for c in found if c.card.get("config")}
    if not configs:
        return ""
    return "; " + " / ".join(", ".join(f"{key}={value}" for key, value in config) for config in sorted(configs))


def make_codec(arch: Architecture, weights_dir: Path | None = None, device: str = "cpu") -> Codec:
    """The codec of `arch` with the checkpoints `weights_dir` adds to (or replaces among) the committed ones, its
    transforms run on `device`."""
    found = checkpoints.resolve(arch.name, weights_dir)
    qualities = tuple(sorted(found))
    return Codec(
        name=arch.name,
        family="learned",
        description=arch.description + _sizes(found.values()),
        quality_name="checkpoint quality index (higher = more bits, larger λ)",
        qualities=qualities,
        encode=lambda image, quality: encode_batch(arch.name, [image], int(quality), weights_dir=weights_dir, device=device)[0],
        decode=functools.partial(decode, weights_dir=weights_dir, device=device),
        header_size=header_size,
        rate_note=(
            "bytes: 6-byte header (architecture, quality, size) + every entropy-coded stream (y, and z "
            "where there is a hyperprior) with LEB128 lengths; header_bytes: the 6-byte header."
        ),
        library_version=functools.partial(_library_version, arch.name, weights_dir),
        point_version=functools.partial(_point_version, arch.name, weights_dir, device),
        install_hint="pip install --no-deps compressai==1.2.8 einops scipy pytorch-msssim",
        encode_batch=lambda images, quality: encode_batch(arch.name, images, int(quality), weights_dir=weights_dir, device=device),
        decode_batch=functools.partial(decode_batch, weights_dir=weights_dir, device=device),
    )


def codecs(weights_dir: Path | None = None) -> list[Codec]:
    """One codec per architecture, with the qualities its checkpoints provide."""
    return [make_codec(arch, weights_dir) for arch in ARCHITECTURES.values()]
