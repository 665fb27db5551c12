"""This suite against CompressAI's `python -m compressai.utils.bench`, like for like, in one run.

    python benchmarks/compare_compressai.py [--images ../shared/datasets/kodak] [--qualities 5,10,20,…,95]
                                            [--jobs 2] [--rounds 3] [--codec jpeg|webp]

Both tools run the same encoder (Pillow at ``quality=q`` with Pillow's
defaults, CompressAI's `JPEG`/`WebP` codecs; this suite gets the same
setting registered as ``pillow-<codec>``) on the same images and qualities,
as whole commands (start-up included) with `--jobs` processes each, every
process limited to one BLAS/torch thread as CompressAI's documentation
advises for `-j` (without it, its pool oversubscribes the cores and its time
varies 2× or more). The two commands alternate for `--rounds` rounds and
each keeps its fastest. CompressAI computes PSNR and MS-SSIM; this suite
computes PSNR, SSIM and MS-SSIM, writes every row to SQLite and writes its
tables and reports.

Printed as JSON: both wall times and their ratio, this suite's per-pair cost
split (read, encode, decode, header size, metrics with each original
prepared once; one thread, in-process) and the harness's share, and the largest per-image difference of
bpp, PSNR and MS-SSIM between the two tools.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
DEFAULT_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "kodak"


def pillow_codec(fmt: str):
    """The encoder CompressAI's bench runs (`PillowCodec`), as a codec of this suite."""
    from PIL import Image

    from bench.codecs import get_codec

    def encode(image, quality):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format=fmt, quality=int(quality))
        return buffer.getvalue()

    def decode(data):
        with Image.open(io.BytesIO(data)) as decoded:
            return np.asarray(decoded.convert("RGB"))

    return dataclasses.replace(get_codec(fmt), name=f"pillow-{fmt}", description=f"Pillow {fmt}, CompressAI bench settings",
                               encode=encode, decode=decode)  # fmt: skip


def suite_command(fmt: str, images: Path, qualities: str, jobs: int, out: Path) -> list[str]:
    return [sys.executable, __file__, "--as-suite", fmt, str(images), qualities, str(jobs), str(out)]


def run_as_suite(fmt: str, images: str, qualities: str, jobs: str, out: str) -> int:
    """This suite's `bench run` with the Pillow codec registered (forked workers inherit it)."""
    from bench.cli import main
    from bench.codecs import register

    codec = pillow_codec(fmt)
    register(codec)
    return main(["run", "--datasets", f"folder:{images}", "--codecs", codec.name, "--qualities", qualities,
                 "--jobs", jobs, "--out", out, "--no-progress"])  # fmt: skip


_PEER = """import sys
from bench.codecs.compressai_compat import import_compressai
import_compressai()  # torchvision stand-in: `python -m compressai.utils.bench` cannot import without it here
from compressai.utils.bench.__main__ import main
main(sys.argv[1:])
"""


def peer_command(fmt: str, images: Path, qualities: str, jobs: int) -> list[str]:
    return [sys.executable, "-c", _PEER, fmt, str(images), "-q", qualities, "-j", str(jobs)]


def timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **ONE_THREAD})
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{command[:4]} failed:\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def cost_split(fmt: str, paths: list[Path], qualities: list[int]) -> dict[str, float]:
    """Mean milliseconds per pair of each stage of this suite's work, one thread, in-process.

    ``metrics`` is what the runner pays: every metric of a pair, each original prepared once and shared by its
    qualities (its first pair carries the preparing). ``<metric> alone`` is one metric on a freshly prepared
    original: what it costs where nothing is shared.
    """
    import cv2

    from bench import metrics
    from bench.images import read_rgb

    cv2.setNumThreads(1)
    codec = pillow_codec(fmt)
    alone = [f"{name} alone" for name in ("psnr", "ssim", "ms_ssim")]
    seconds = dict.fromkeys(("read", "encode", "decode", "header size", "metrics", *alone), 0.0)
    pairs = 0
    for path in paths:
        start = time.perf_counter()
        image, _ = read_rgb(path)
        seconds["read"] += time.perf_counter() - start
        reference = metrics.prepare(image)  # once per image, as the runner does
        for quality in qualities:
            start = time.perf_counter()
            data = codec.encode(image, quality)
            seconds["encode"] += time.perf_counter() - start
            start = time.perf_counter()
            decoded = codec.decode(data)
            seconds["decode"] += time.perf_counter() - start
            start = time.perf_counter()
            codec.header_size(data)
            seconds["header size"] += time.perf_counter() - start
            start = time.perf_counter()
            metrics.measure(reference, decoded)
            seconds["metrics"] += time.perf_counter() - start
            for name, stage in zip(("psnr", "ssim", "ms_ssim"), alone):
                pair = metrics.Pair(metrics.prepare(image), decoded)
                start = time.perf_counter()
                metrics.METRICS[name].compute(pair)
                seconds[stage] += time.perf_counter() - start
            pairs += 1
    return {stage: round(1000 * total / pairs, 3) for stage, total in seconds.items()}


def agreement(fmt: str, paths: list[Path], qualities: list[int], out: Path) -> dict[str, float]:
    """Largest per-image |difference| of bpp, PSNR and MS-SSIM between CompressAI's codec and this suite's rows."""
    from bench.codecs.compressai_compat import import_compressai
    from bench.tables import results

    import_compressai()
    from compressai.utils.bench.codecs import JPEG, WebP

    peer = {"jpeg": JPEG, "webp": WebP}[fmt](argparse.Namespace())
    ours = results(out).set_index(["image", "quality"])
    worst = {"bpp": 0.0, "psnr": 0.0, "ms_ssim": 0.0}
    for path in paths:
        for quality in qualities:
            theirs = peer.run(str(path), quality, ["psnr-rgb", "ms-ssim-rgb"])
            row = ours.loc[(path.name, float(quality))]
            worst["bpp"] = max(worst["bpp"], abs(theirs["bpp"] - row["bpp"]))
            worst["psnr"] = max(worst["psnr"], abs(theirs["psnr-rgb"] - row["psnr"]))
            if not np.isnan(row["ms_ssim"]):
                worst["ms_ssim"] = max(worst["ms_ssim"], abs(theirs["ms-ssim-rgb"] - row["ms_ssim"]))
    return worst


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--as-suite":
        raise SystemExit(run_as_suite(*sys.argv[2:]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="a folder of images (default: Kodak)")
    parser.add_argument("--qualities", default="5,10,20,30,40,50,60,70,80,90,95")
    parser.add_argument("--codec", choices=["jpeg", "webp"], default="jpeg")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not args.images.is_dir():
        parser.error(f"--images {args.images}: not a folder")
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".png", ".jpg", ".ppm", ".tif"})
    qualities = [int(q) for q in args.qualities.split(",")]
    best = {"compressai_bench_s": float("inf"), "this_suite_s": float("inf")}
    with tempfile.TemporaryDirectory() as work:
        for round_ in range(args.rounds):
            out = Path(work, f"suite-{round_}")  # a fresh run directory: nothing to resume
            seconds, _ = timed(peer_command(args.codec, args.images, args.qualities, args.jobs))
            best["compressai_bench_s"] = min(best["compressai_bench_s"], seconds)
            seconds, _ = timed(suite_command(args.codec, args.images, args.qualities, args.jobs, out))
            best["this_suite_s"] = min(best["this_suite_s"], seconds)
        split = cost_split(args.codec, paths, qualities)
        worst = agreement(args.codec, paths, qualities, out)
    pairs = len(paths) * len(qualities)
    # every stage's mean is per pair (read and prepare happen once per image, spread over its pairs)
    work_s = pairs * sum(split[stage] for stage in ("read", "encode", "decode", "header size", "metrics")) / 1000
    report = {
        "images": len(paths), "qualities": qualities, "pairs": pairs, "jobs": args.jobs, "rounds": args.rounds,
        "load_average_at_end": os.getloadavg()[0], **{k: round(v, 2) for k, v in best.items()},
        "speed_ratio": round(best["compressai_bench_s"] / best["this_suite_s"], 2),
        "per_pair_ms_one_thread": split,
        "suite_work_cpu_s": round(work_s, 2),
        "suite_harness_s": round(best["this_suite_s"] - work_s / args.jobs, 2),
        "max_abs_diff_per_image": worst,
    }  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
