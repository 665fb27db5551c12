"""The Dask executor gives the same rows as the local pool, written by the client."""

import pytest

from bench.runner import SweepConfig, sweep
from bench.store import REPRODUCIBLE
from bench.tables import results

distributed = pytest.importorskip("dask.distributed")


def test_local_cluster_rows_equal_local_pool_rows(tmp_path):
    common = dict(datasets=["eurosat"], codecs=["jpeg", "bpg"], limit=8, progress=False)
    sweep(SweepConfig(out=tmp_path / "local", jobs=2, **common))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:  # fmt: skip
        summary = sweep(SweepConfig(out=tmp_path / "dask", scheduler=cluster.scheduler_address, **common))
    local, remote = (results(tmp_path / name)[list(REPRODUCIBLE)] for name in ("local", "dask"))
    assert summary.rows_written == len(local) > 0
    assert local.equals(remote)
    again = sweep(SweepConfig(out=tmp_path / "dask", scheduler="tcp://127.0.0.1:1", **common))
    assert again.rows_written == 0  # resumed: nothing left to compute, no cluster needed
