"""Plug-ins: your own codecs (and datasets, metrics) without editing the package.

A plug-in is a Python module or file that registers through the public
interface the built-ins use, or a TOML file of external encoder/decoder
commands (`bench.codecs.external`) (`bench.codecs.register`, `bench.metrics.METRICS`,
`bench.datasets.DATASETS`) when it is imported. Plug-ins come from the
``rs_codec_bench.plugins`` entry-point group of installed packages and from
``--plugin MODULE_OR_FILE.py``. Forked workers inherit them; Dask workers load
them again from the task; every run records each plug-in's module, version and
file hash, so a report names what it measured even where the plug-in is absent.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from bench.files import sha256_of

ENTRY_POINT_GROUP = "rs_codec_bench.plugins"


class PluginError(ImportError):
    """A plug-in cannot be loaded; the message names it and why."""


def load(specs: Sequence[str] = ()) -> list[dict]:
    """Import the entry-point plug-ins and `specs` (module names or .py files) once each; their provenance."""
    found = [_load_entry_point(entry) for entry in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=str)]
    return found + [_load_spec(spec) for spec in specs]


@functools.cache
def _load_spec(spec: str) -> dict:
    path = Path(spec)
    try:
        if path.suffix == ".toml":  # external encoder/decoder commands (bench.codecs.external)
            from bench.codecs import register
            from bench.codecs.external import codecs_from_file

            if not path.is_file():
                raise PluginError(f"codec file {spec}: no such file")
            for codec in codecs_from_file(path):
                register(codec)
            return _provenance(spec, "bench.codecs.external", "toml", str(path.resolve()))
        if path.suffix == ".py":
            if not path.is_file():
                raise PluginError(f"plug-in {spec}: no such file")
            name = f"bench_plugin_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
            loader_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[name] = module  # pickled codec functions find their module again (local pool, Dask)
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(spec)
    except PluginError:
        raise
    except Exception as exc:  # a plug-in's own bug must say whose it is
        raise PluginError(f"plug-in {spec} failed to load: {type(exc).__name__}: {exc}") from None
    return _module_provenance(spec, module)


@functools.cache
def _load_entry_point(entry: metadata.EntryPoint) -> dict:
    try:
        module = entry.load()
    except Exception as exc:
        raise PluginError(f"plug-in {entry.name} ({entry.value}) failed to load: {type(exc).__name__}: {exc}") from None
    return _module_provenance(entry.value, module)


def _module_provenance(spec: str, module) -> dict:
    return _provenance(spec, module.__name__, str(getattr(module, "__version__", "unknown")),
                       getattr(module, "__file__", None))  # fmt: skip


def _provenance(spec: str, module: str, version: str, file: str | None) -> dict:
    """What a run records of a plug-in: enough to name exactly what it measured."""
    digest = sha256_of(Path(file)) if file and Path(file).is_file() else None
    return {"spec": spec, "module": module, "version": version, "file": file, "sha256": digest}
