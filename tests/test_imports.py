"""Classical work never pays for torch and CompressAI (~5 s of imports): checked in a fresh interpreter."""

import subprocess
import sys

import pytest

_PROBE = """
import atexit, runpy, sys
atexit.register(lambda: print("HEAVY:" + ",".join(m for m in ("torch", "compressai") if m in sys.modules)))
sys.argv = ["bench", *sys.argv[1:]]
runpy.run_module("bench", run_name="__main__")
"""


def _heavy_modules(*args: str) -> str:
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.rsplit("HEAVY:", 1)[1].strip()


def test_listing_codecs_imports_neither_torch_nor_compressai():
    assert _heavy_modules("codecs") == ""


@pytest.mark.parametrize("classify", [False, True], ids=["no-classify", "unlabelled"])
def test_a_classical_sweep_and_its_report_import_neither(tmp_path, classify):
    out = tmp_path / "run"
    if classify:  # an unlabelled folder: nothing to classify, so no reason to load torch
        (tmp_path / "images").mkdir()
        from PIL import Image

        Image.new("RGB", (40, 30), (10, 200, 30)).save(tmp_path / "images" / "a.png")
        args = ["--datasets", f"folder:{tmp_path / 'images'}"]
    else:
        args = ["--limit", "3", "--no-classify"]
    assert _heavy_modules("run", *args, "--codecs", "jpeg,webp", "--out", str(out), "--jobs", "1", "--no-progress") == ""
    assert _heavy_modules("report", str(out)) == ""


_BLOCK_CODEC_LIBRARIES = """
import importlib.abc, sys
BLOCKED = {"imagecodecs", "glymur", "av", "pillow_heif", "torch", "compressai"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: reports must not need codec libraries")
sys.meta_path.insert(0, Block())
"""


def test_report_baseline_and_check_work_on_a_copied_run_without_dataset_or_codecs(tmp_path):
    import shutil

    from bench.cli import main

    original = tmp_path / "run"
    assert main(["run", "--limit", "3", "--codecs", "jpeg,webp", "--qualities", "20,60", "--out", str(original),
                 "--jobs", "1", "--no-progress", "--no-classify"]) == 0  # fmt: skip
    copy = tmp_path / "elsewhere" / "run"
    shutil.copytree(original, copy, ignore=shutil.ignore_patterns("*.csv", "*.parquet", "report.*", "plots"))
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(_BLOCK_CODEC_LIBRARIES)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path / "site"), "BENCH_DATA_DIR": str(tmp_path / "none"),
           "HOME": str(tmp_path)}  # fmt: skip
    baseline = tmp_path / "baseline.json"
    for args in (["report", str(copy)], ["baseline", str(copy), "--out", str(baseline)],
                 ["check", str(copy), "--baseline", str(baseline)]):  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=300)  # fmt: skip
        assert done.returncode == 0, (args, done.stderr[-2000:])
    report = (copy / "report.md").read_text()
    assert report.count("](plots/gallery-") == 3 * 3  # originals and both codecs, from the stored crops
    assert "webp" in report and "0 regression(s)" in done.stdout


def test_the_package_has_no_import_cycle():
    """Module-level imports between bench modules form a DAG (imports inside functions are deliberate and lazy)."""
    import ast
    from pathlib import Path

    import bench

    root = Path(bench.__file__).parent
    modules = {".".join(("bench", *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__"): p
               for p in root.rglob("*.py")}  # fmt: skip
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.parse(path.read_text()).body:  # top level only
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bench"):
                targets |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                            for a in node.names}  # fmt: skip
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("bench")}
        graph[name] = {t for t in targets if t in modules and t != name}
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                raise AssertionError("import cycle: " + " → ".join([*trail[trail.index(target):], target]))
            if target not in state:
                visit(target, [*trail, target])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
