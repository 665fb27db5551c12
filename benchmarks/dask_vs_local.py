"""The Dask executor against the local pool on the same work, in one run.

    python benchmarks/dask_vs_local.py [--limit 100] [--codecs jpeg,webp,bpg] [--workers 2]

Runs the sweep with the local pool (`--jobs N`) and on a `LocalCluster` of N
single-threaded worker processes on loopback (`--scheduler`), and reports both
wall times (the cluster's start-up apart), and whether the two runs stored
the same rows: keys, labels, splits, bytes, header bytes, MSE, PSNR, SSIM
and errors (timings differ by nature).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from dask.distributed import LocalCluster

from bench.runner import SweepConfig, sweep
from bench.store import REPRODUCIBLE
from bench.tables import results

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100, help="images of the shipped sample")
    parser.add_argument("--codecs", default="jpeg,webp,bpg")
    parser.add_argument("--workers", type=int, default=2, help="local processes, and Dask workers")
    args = parser.parse_args()
    common = dict(datasets=["eurosat"], codecs=args.codecs.split(","), limit=args.limit, progress=False, classify=False)
    report: dict = {"images": args.limit, "codecs": common["codecs"], "workers": args.workers}
    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        summary = sweep(SweepConfig(out=Path(work, "local"), jobs=args.workers, **common))
        report["local_s"] = time.perf_counter() - start
        start = time.perf_counter()
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster:  # fmt: skip
            report["cluster_start_s"] = time.perf_counter() - start
            start = time.perf_counter()
            sweep(SweepConfig(out=Path(work, "dask"), scheduler=cluster.scheduler_address, **common))
            report["dask_s"] = time.perf_counter() - start
        local, remote = (results(Path(work, name))[list(REPRODUCIBLE)] for name in ("local", "dask"))
        report["rows"] = summary.rows_written
        report["rows_equal"] = bool(local.equals(remote))
    report["dask_over_local"] = report["dask_s"] / report["local_s"]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
