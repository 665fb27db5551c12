"""The convolutional VAE of arXiv 2404.03696, with a factorized entropy bottleneck.

The paper specifies a fully convolutional encoder and decoder with **no
normalisation layers (no GDN) and no hyperprior**, a learned factorized
entropy model on the latent, trained on the rate–distortion loss; it leaves
the layer counts open. Choices made here, and why:

- `stages` stride-2 5×5 convolutions down and as many stride-2 5×5 transposed
  convolutions up; the default 4 (16× down-sampling) is Ballé et al.'s
  factorized model, so the two then differ only in GDN vs. a plain
  non-linearity; a 64×64 EuroSAT tile becomes a 4×4 latent;
- LeakyReLU (slope 0.01) between layers instead of GDN; none after the last
  layer of either transform (the latent and the image are unbounded
  regressions, the image is clamped to [0, 1] only when decoding);
- `latent_channels` (M, the paper's first experiment sweeps it), `channels`
  (N) and `stages` are parameters, stored in each checkpoint. The committed
  ladder uses N = 64, M = 96 and 3 stages (8× down-sampling, an 8×8 latent
  per tile): without GDN, 4 stages with M = 192 stalled at 35.6 dB at the
  top of the ladder, and at equal training steps 3 stages reached a 28% lower
  rate–distortion loss at half the checkpoint size (SCALING.md).
"""

from __future__ import annotations

from torch import Tensor, nn

from bench.codecs.compressai_compat import import_compressai

import_compressai()
from compressai.entropy_models import EntropyBottleneck  # noqa: E402
from compressai.models.utils import conv, deconv  # noqa: E402
from compressai.models import CompressionModel  # noqa: E402


class CVAE(CompressionModel):
    """Encoder/decoder without normalisation layers and a factorized entropy bottleneck."""

    def __init__(self, channels: int = 64, latent_channels: int = 96, stages: int = 4):
        super().__init__()
        if stages < 1:
            raise ValueError(f"stages must be ≥ 1, not {stages}")
        self.channels, self.latent_channels, self.stages = channels, latent_channels, stages
        self.entropy_bottleneck = EntropyBottleneck(latent_channels)
        widths = [3] + [channels] * (stages - 1) + [latent_channels]
        self.g_a = _chain([conv(a, b) for a, b in zip(widths, widths[1:])])
        self.g_s = _chain([deconv(b, a) for a, b in reversed(list(zip(widths, widths[1:])))])

    @property
    def downsampling_factor(self) -> int:
        return 2**self.stages

    @property
    def config(self) -> dict:
        return {"channels": self.channels, "latent_channels": self.latent_channels, "stages": self.stages}

    def forward(self, x: Tensor) -> dict:
        y = self.g_a(x)
        y_hat, y_likelihoods = self.entropy_bottleneck(y)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_likelihoods}}

    def compress(self, x: Tensor) -> dict:
        y = self.g_a(x)
        return {"strings": [self.entropy_bottleneck.compress(y)], "shape": y.size()[-2:]}

    def decompress(self, strings: list, shape) -> dict:
        y_hat = self.entropy_bottleneck.decompress(strings[0], shape)
        return {"x_hat": self.g_s(y_hat).clamp_(0, 1)}


def _chain(layers: list[nn.Module]) -> nn.Sequential:
    """The layers with a LeakyReLU between each two (none after the last)."""
    modules: list[nn.Module] = []
    for layer in layers:
        modules += [layer, nn.LeakyReLU()]
    return nn.Sequential(*modules[:-1])
