"""Provenance: what ran, where, with which versions; stored with every invocation of a sweep."""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

from bench import __version__, plugins
from bench.assets import IN_CHECKOUT
from bench.codecs import get_codec

def run_info(config, summary) -> dict:
    """Metadata stored with every invocation: what ran, where, with which versions."""
    return {
        "bench_version": __version__,
        "git_commit": git_commit(),
        "command": config.command or shlex.join(sys.argv),
        "datasets": summary.datasets,
        "dataset_identities": summary.identities,
        "codecs": {name: get_codec(name, weights_dir=config.weights_dir).version for name in config.codecs if name not in summary.unavailable},
        "device": config.device,  # where learned codecs ran their transforms (their rows' codec_version says it too)
        "unavailable": summary.unavailable,
        "plugins": plugins.load(config.plugins),
        "codec_info": {name: get_codec(name, weights_dir=config.weights_dir).describe() for name in config.codecs},  # reports need no plug-in
        "split": config.split,
        "limit": config.limit,
        "seed": config.seed,
        "data_dir": str(config.data_dir) if config.data_dir else None,
        "weights_dir": str(config.weights_dir) if config.weights_dir else None,
        "jobs": config.jobs or os.cpu_count(),
        "executor": f"dask {config.scheduler}" if config.scheduler else "local pool",
        "python": platform.python_version(),
        "machine": f"{platform.node()} {platform.machine()} {platform.system()} {platform.release()}, {os.cpu_count()} CPUs",
        "packages": package_versions(),
    }


def git_commit() -> str:
    """The commit of the bench checkout (with "+dirty" when modified), or "unknown" (e.g. installed from a wheel)."""
    if not IN_CHECKOUT:  # a wheel inside some other repository must not record that repository's commit
        return "unknown"
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def package_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for name in ("numpy", "pillow", "imagecodecs", "glymur", "av", "scikit-image", "torch", "pytorch-msssim", "pandas"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


