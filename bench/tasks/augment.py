"""Degradations a robust reference classifier is trained on: what the suite measures.

Two parts, so that the costly one runs once:

- `reencoded_copies`: every training tile encoded and decoded through the
  suite's own classical codecs, at a quality drawn uniformly from each
  codec's default sweep (a seeded draw per tile and copy). Encoding costs
  ~0.1–15 ms per tile, too much to repeat every epoch on a CPU, so a few
  copies per tile are made once and sampled from.
- `degrade`: per-sample flips, 90° rotations, Gaussian blur, noise and colour
  jitter on a float batch in torch, cheap enough for every step. Blur stands
  in for the smooth reconstructions of learned codecs.
"""

from __future__ import annotations

import numpy as np

CLASSICAL_FOR_AUGMENTATION = ("jpeg", "jpeg444", "jpeg2000", "webp", "bpg", "avif", "jpegxl")


def reencoded_copies(images: np.ndarray, copies: int, seed: int, codec_names=CLASSICAL_FOR_AUGMENTATION) -> np.ndarray:
    """`copies` decoded versions of each N×H×W×3 uint8 image: a copies×N×H×W×3 array.

    Codecs that are not available here are left out of the draw; the caller's
    card records which were used.
    """
    from tqdm import tqdm

    from bench.codecs import CODECS

    codecs = [CODECS[name] for name in codec_names if name in CODECS and CODECS[name].available]
    if not codecs:
        raise RuntimeError("no classical codec is available for re-encoding augmentation")
    rng = np.random.default_rng([seed, 7])
    out = np.empty((copies, *images.shape), np.uint8)
    for copy in range(copies):
        for index in tqdm(range(len(images)), desc=f"re-encoding copy {copy + 1}/{copies}", mininterval=30):
            codec = codecs[rng.integers(len(codecs))]
            quality = codec.qualities[rng.integers(len(codec.qualities))]
            out[copy, index] = codec.decode(codec.encode(images[index], quality))
    return out


def _gaussian_kernels(sigmas, size: int = 7):
    import torch

    offsets = torch.arange(size, dtype=torch.float32) - size // 2
    kernels = torch.exp(-(offsets[None, :] ** 2) / (2 * sigmas[:, None] ** 2))
    return kernels / kernels.sum(1, keepdim=True)


def degrade(x, generator, *, p_blur: float = 0.3, max_sigma: float = 1.5, p_noise: float = 0.3,
            max_noise: float = 5.0, jitter: float = 0.1):  # fmt: skip
    """Randomly flipped, rotated, blurred, noisy and colour-jittered copy of a B×3×H×W batch in [0, 1].

    Noise σ is in 8-bit levels; the result is rounded to the 8-bit grid, as a decoded image is.
    """
    import torch
    import torch.nn.functional as F

    b, c, h, w = x.shape
    flip = torch.rand(b, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    turns = torch.randint(4, (b,), generator=generator)
    x = torch.stack([torch.rot90(x[i], int(turns[i]), (-2, -1)) for i in range(b)]) if h == w else x
    blur = torch.rand(b, generator=generator) < p_blur
    if blur.any():
        sigmas = 0.3 + torch.rand(int(blur.sum()), generator=generator) * (max_sigma - 0.3)
        kernels = _gaussian_kernels(sigmas).repeat_interleave(c, 0)  # one 1-D kernel per channel
        chosen = x[blur].reshape(1, -1, h, w)
        pad = kernels.shape[1] // 2
        chosen = F.conv2d(F.pad(chosen, (pad, pad, 0, 0), mode="reflect"), kernels[:, None, None, :], groups=len(kernels))
        chosen = F.conv2d(F.pad(chosen, (0, 0, pad, pad), mode="reflect"), kernels[:, None, :, None], groups=len(kernels))
        x = x.clone()
        x[blur] = chosen.reshape(-1, c, h, w)
    gain = 1 + (torch.rand(b, 1, 1, 1, generator=generator) * 2 - 1) * jitter
    contrast = 1 + (torch.rand(b, 1, 1, 1, generator=generator) * 2 - 1) * jitter
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean * gain
    noisy = (torch.rand(b, 1, 1, 1, generator=generator) < p_noise).float()
    sigma = torch.rand(b, 1, 1, 1, generator=generator) * max_noise / 255.0
    x = x + noisy * sigma * torch.randn(x.shape, generator=generator)
    return x.clamp_(0, 1).mul_(255).round_().div_(255)
