"""The quick start from an installed wheel, outside the checkout (run by ``tox -e wheel``; exit 1 on failure).

Checks that `bench` is the installed copy, that the assets it needs at run time came with it (shipped sample,
manifests, committed checkpoints and classifier, baselines), and that ``bench run --limit 5`` sweeps classical and
learned codecs with downstream accuracy, then reports and checks.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import bench
from bench.assets import ASSET_ROOT

CHECKOUT = Path(__file__).resolve().parents[2]


def bench_cli(*args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, cwd=cwd, timeout=900)
    if done.returncode != 0:
        sys.exit(f"`bench {' '.join(args)}` failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def main() -> None:
    installed = Path(bench.__file__).resolve().parent
    if installed == CHECKOUT / "bench" or "site-packages" not in installed.parts:
        sys.exit(f"bench is imported from the checkout ({installed}), not from the installed wheel")
    if ASSET_ROOT != installed / "_assets":
        sys.exit(f"assets resolve to {ASSET_ROOT}, expected the wheel's copy {installed / '_assets'}")
    for needed in ("datasets/eurosat-sample", "datasets/manifests/eurosat-seed0.csv", "codecs/classifier/eurosat.pt",
                   "codecs/cvae", "reports/baseline"):  # fmt: skip
        if not (ASSET_ROOT / needed).exists():
            sys.exit(f"the wheel lacks {needed}")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        listing = bench_cli("codecs", cwd=work)
        if "cvae" not in listing or "UNAVAILABLE: no checkpoints" in listing.split("cvae", 1)[1].split("\n")[0]:
            sys.exit("the committed learned checkpoints are not found from the wheel:\n" + listing)
        bench_cli("run", "--limit", "5", "--codecs", "jpeg,webp,cvae", "--out", "run", "--no-progress", cwd=work)
        import pandas as pd

        rows = pd.read_csv(work / "run" / "results.csv")
        if set(rows["codec"]) != {"jpeg", "webp", "cvae"} or rows["error"].notna().any() or rows["predicted"].isna().all():
            sys.exit(f"unexpected rows:\n{rows.groupby('codec')[['error', 'predicted']].count()}")
        if not (work / "run" / "report.html").is_file():
            sys.exit("no report.html")
        bench_cli("baseline", "run", "--out", "baseline.json", cwd=work)
        print(bench_cli("check", "run", "--baseline", "baseline.json", cwd=work).strip().splitlines()[-1])
    print(f"ok: {len(rows)} rows from the wheel installed at {installed}")


if __name__ == "__main__":
    main()
