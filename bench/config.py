"""What a sweep is asked to do, checked before anything runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from bench.assets import refuse_committed_folder
from bench.codecs import get_codec, learned
from bench.datasets import DEFAULT_SEED, check_name
from bench.images import DEFAULT_MAX_PIXELS
from bench.tasks.adapt import DEFAULT_STEPS as ADAPT_STEPS

PROTOCOL_CHOICES = ("fixed", "adapted", "both")
"""``fixed`` scores decoded images with the reference classifier; ``adapted`` and ``both`` add the codec-adapted
protocol (`bench.tasks.adapt`); the fixed one is always measured, it costs one forward pass."""


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """What to sweep and where to write it."""

    datasets: Sequence[str]
    codecs: Sequence[str]
    out: Path
    qualities: dict[str, tuple[float, ...]] = dataclasses.field(default_factory=dict)
    split: str = "all"
    limit: int | None = None
    seed: int = DEFAULT_SEED
    jobs: int = 0  # 0: all cores
    data_dir: Path | None = None
    seconds_per_pair: float = 120.0  # time limit of one encode+decode+metrics (× the images of a learned batch)
    scheduler: str | None = None  # address of a Dask scheduler (tcp://HOST:PORT); None: the local pool
    progress: bool = True
    classify: bool = True  # downstream accuracy on labelled datasets that have a committed classifier
    max_pixels: int = DEFAULT_MAX_PIXELS  # pixel budget per image, checked from its header
    retry_failed: bool = True  # a resume measures failed rows again (a hung codec costs its time limit each time)
    command: str = ""  # the command line that started the sweep, as a user would type it again
    plugins: tuple[str, ...] = ()  # --plugin modules or files (entry-point plug-ins load by themselves)
    weights_dir: Path | None = None  # learned codecs: checkpoints here replace committed ones of equal quality
    device: str = "cpu"  # learned codecs: where their transforms run; entropy coding stays on the CPU
    protocol: str = "fixed"  # downstream protocols: "fixed", or "adapted"/"both" to add the codec-adapted one
    adapt_steps: int = ADAPT_STEPS  # fine-tuning budget of each adapted classifier (`bench.tasks.adapt`)


class ConfigError(ValueError):
    """A sweep configuration that cannot run (unknown name, invalid quality, missing folder); one line."""


def resolve_qualities(specs: Sequence[tuple[str | None, tuple[float, ...]]], codecs: Sequence[str],
                      weights_dir: Path | None = None) -> dict[str, tuple[float, ...]]:  # fmt: skip
    """Each codec's qualities from ``(codec or None for all, values)`` specs, checked and normalised by the codec.

    A codec's own spec wins over the general one whatever their order; each
    may be given once. Done before anything runs, so ``cvae=2.5`` is refused
    rather than encoded as checkpoint 2 and stored as 2.5.
    """
    general, own = None, {}
    for target, values in specs:
        if target is not None and target not in codecs:
            raise ConfigError(f"--qualities {target}=…: codec {target!r} is not among --codecs ({', '.join(codecs)})")
        if (target in own) if target else (general is not None):
            raise ConfigError(f"--qualities: {'codec ' + target if target else 'the general list'} given twice")
        if target:
            own[target] = values
        else:
            general = values
    chosen = {name: own.get(name, general) for name in codecs if own.get(name, general) is not None}
    try:
        return {name: tuple(get_codec(name, weights_dir=weights_dir).check_quality(v) for v in values)
                for name, values in chosen.items()}  # fmt: skip
    except ValueError as exc:
        raise ConfigError(f"--qualities: {exc}") from None


def check_config(config: SweepConfig) -> None:
    """ConfigError, before anything runs, for unknown codecs or datasets and unusable folders."""
    for name in config.codecs:
        get_codec(name, weights_dir=config.weights_dir)  # UnknownName, with a did-you-mean
    for name in config.datasets:
        check_name(name)
    # a Dask cluster's workers are elsewhere: this machine's devices say nothing of theirs (their rows name errors)
    problem = learned.unusable_device(config.device) if config.scheduler is None else None
    if problem:
        raise ConfigError(f"--device {config.device}: {problem}")
    if config.protocol not in PROTOCOL_CHOICES:
        raise ConfigError(f"--protocol {config.protocol!r}: valid: {', '.join(PROTOCOL_CHOICES)}")
    try:
        str(config.out).encode("utf-8")
    except UnicodeEncodeError:  # its name goes into the database, the tables and the reports
        raise ConfigError(f"--out {config.out!s:.60}: the name is not valid UTF-8; choose another") from None
    if Path(config.out).exists() and not Path(config.out).is_dir():
        raise ConfigError(f"--out {config.out}: is a file, not a run directory")
    refuse_committed_folder(config.out, "a run directory belongs elsewhere (runs/…)")
    for flag, folder in (("--data-dir", config.data_dir), ("--weights-dir", config.weights_dir)):
        if folder is not None and not Path(folder).is_dir():
            raise ConfigError(f"{flag} {folder}: no such directory")
