"""This suite against CompressAI's own `python -m compressai.utils.bench`, on the same images.

    python benchmarks/compare_compressai.py [--limit N] [--qualities 10,50,90]

CompressAI's bench runs Pillow's JPEG and WebP encoders at `quality=q` with
Pillow's defaults. For a like-for-like comparison this script registers the
same two settings as codecs of this suite (`pillow-jpeg`, `pillow-webp`),
runs both tools on the same images of the shipped EuroSAT sample at --jobs 1,
and reports both wall times, their ratio, and the largest per-image bpp and
PSNR difference between the two (they should agree to rounding).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.codecs import get_codec, register
from bench.codecs.compressai_compat import import_compressai
from bench.datasets import load_dataset
from bench.runner import SweepConfig, sweep
from bench.tables import results


def _pillow_codec(fmt: str, name: str):
    def encode(image, quality):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format=fmt, quality=int(quality))
        return buffer.getvalue()

    def decode(data):
        with Image.open(io.BytesIO(data)) as decoded:
            return np.asarray(decoded.convert("RGB"))

    base = get_codec("jpeg" if fmt == "jpeg" else "webp")
    return dataclasses.replace(base, name=name, description=f"Pillow {fmt}, CompressAI bench settings",
                               encode=encode, decode=decode)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--qualities", default="10,50,90")
    args = parser.parse_args()
    qualities = [int(q) for q in args.qualities.split(",")]
    import_compressai()
    from compressai.utils.bench import __main__ as compressai_bench
    from compressai.utils.bench.codecs import JPEG, WebP

    records = load_dataset("eurosat").select("all", args.limit)
    report = {"images": len(records), "qualities": qualities}
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work, "images")
        for record in records:  # CompressAI's bench takes a folder
            target = folder / record.id
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(record.path, target)
        for fmt, cls in (("jpeg", JPEG), ("webp", WebP)):
            name = f"pillow-{fmt}"
            register(_pillow_codec(fmt, name))
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                compressai_bench.main([fmt, str(folder), "-q", args.qualities, "--metrics", "psnr-rgb", "-j", "1"])
            theirs_s = time.perf_counter() - start
            start = time.perf_counter()
            sweep(SweepConfig(datasets=[f"folder:{folder}"], codecs=[name], qualities={name: tuple(qualities)},
                              out=Path(work, name), jobs=1, progress=False, classify=False))  # fmt: skip
            ours_s = time.perf_counter() - start
            ours = results(Path(work, name)).set_index(["image", "quality"])
            codec = cls(argparse.Namespace())
            bpp_diff = psnr_diff = 0.0
            for record in records:
                for quality in qualities:
                    theirs = codec.run(str(folder / record.id), quality, ["psnr-rgb"])
                    row = ours.loc[(record.id, float(quality))]
                    bpp_diff = max(bpp_diff, abs(theirs["bpp"] - row["bpp"]))
                    psnr_diff = max(psnr_diff, abs(theirs["psnr-rgb"] - row["psnr"]))
            report[fmt] = {"compressai_bench_s": theirs_s, "this_suite_s": ours_s, "ratio": ours_s / theirs_s,
                           "max_abs_bpp_diff": bpp_diff, "max_abs_psnr_diff_db": psnr_diff}  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
