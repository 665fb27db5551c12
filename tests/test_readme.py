"""Every example command of the README, run as written, in order, in a fresh folder."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def _blocks() -> list[list[str]]:
    examples = README.read_text().split("### Examples", 1)[1].split("\nExit codes:", 1)[0]
    return [[line for line in block.splitlines() if line.strip()] for block in re.findall(r"```bash\n(.*?)```", examples, re.S)]


def _run_all(commands: list[str], cwd: Path) -> None:
    for command in commands:
        argv = shlex.split(command)
        assert argv[:3] == ["python", "-m", "bench"], command
        done = subprocess.run([sys.executable, *argv[1:]], cwd=cwd, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{command}\n{done.stderr[-2000:]}"


def test_the_readme_examples_run_as_written(tmp_path):
    blocks = _blocks()
    assert len(blocks) == 2 and len(blocks[0]) >= 8
    _run_all(blocks[0], tmp_path)
    assert (tmp_path / "runs" / "example" / "report.html").is_file()
    assert list((tmp_path / "runs" / "example" / "export" / "compressai").rglob("cvae.json"))


@pytest.mark.slow
def test_the_readme_examples_on_the_full_dataset_run_as_written(tmp_path):
    if not SHARED.is_dir():
        pytest.skip(f"needs the full EuroSAT at {SHARED}")
    (tmp_path / "work").mkdir()
    (tmp_path / "shared").symlink_to(SHARED.parent)  # the examples say ../shared/datasets
    _run_all(_blocks()[1], tmp_path / "work")
