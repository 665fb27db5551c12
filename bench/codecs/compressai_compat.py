"""Importing CompressAI without torchvision.

`import compressai` reaches `compressai/registry/transforms.py`, which imports
`torchvision.transforms` only to list dataset transforms in a registry that a
codec benchmark never uses. No torchvision wheel works with the pinned CPU
torch, so when torchvision cannot be imported, an empty stand-in module is
put in its place for the duration of that one import and removed right
after: nothing else ever sees it, and CompressAI's models, entropy models and
entropy coder are untouched.
"""

from __future__ import annotations

import functools
import importlib
import sys
import types


@functools.cache
def import_compressai() -> types.ModuleType:
    """Import and return `compressai` (with the stand-in above when needed)."""
    try:
        importlib.import_module("torchvision.transforms")
    except Exception:  # missing, or the registry's wheel that fails against the CPU torch
        stand_in = {name: types.ModuleType(name) for name in ("torchvision", "torchvision.transforms")}
        stand_in["torchvision"].transforms = stand_in["torchvision.transforms"]
        saved = {name: sys.modules.pop(name, None) for name in stand_in}
        sys.modules.update(stand_in)
        try:
            import compressai.zoo  # noqa: F401  (imports the registry once, with the stand-in)
        finally:
            for name, module in saved.items():
                if module is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = module
    import compressai
    import compressai.zoo  # noqa: F401

    return compressai
