"""The tracker under torch.distributed (2 gloo processes): each measures its share, the NC states
are merged (usable_nc's all_reduce_states), rank 0 fits the DIB decoders on the gathered features
and alone writes; the values equal a single-process run."""
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import TensorDataset

import usable

C = 3


def _data():
    g = torch.Generator().manual_seed(3)
    y = torch.arange(91) % C                       # 91: the two shards differ in size and class make-up
    x = torch.randn(91, 12, generator=g, dtype=torch.float64) + y[:, None].double()
    return (x[:61], y[:61]), (x[61:], y[61:])


def _model():
    torch.manual_seed(0)  # float64: per-sample features then do not depend on how samples are batched
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, C)).double()


def _track(store):
    (x, y), test = _data()
    t = usable.Tracker(_model(), ["input", "1", "3"], train=TensorDataset(x, y), test=test, n_classes=C,
                       store=store, run="ddp", dib_epochs=2, dib_batch_size=16, nc_method="two_pass")
    return t.epoch_end(1)


def _worker(rank, world, init_file, store, out_file):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        ds = _track(store if rank == 0 else store + f".rank{rank}")  # rank 1 must not write either path
        if rank == 1:
            assert not os.path.exists(store + ".rank1") and np.isnan(ds.sufficiency.values).all()
            torch.save({"nc1": torch.from_numpy(ds.nc1.values)}, out_file)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_two_processes_give_the_single_process_values(tmp_path):
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    store = str(tmp_path / "ddp.zarr")
    mp.start_processes(_worker, args=(2, str(tmp_path / "init"), store, str(tmp_path / "rank1.pt")), nprocs=2,
                       join=True, start_method="fork")
    got = usable.open_results(store)["ddp"].load()
    assert got.attrs["world_size"] == 2 and "all_reduce_states" in got.attrs["merge"]
    want = _track(str(tmp_path / "single.zarr"))
    for v in ("nc1", "nc_trace_quotient", "nc_cdnv_mean", "nc2_etf_error", "nc4", "ncc_error", "nc_n_samples",
              "nc_class_nc1", "loss", "accuracy"):
        np.testing.assert_allclose(got[v].values, want[v].values, rtol=1e-9, err_msg=v)
    # every process ends with the merged statistics, not only the writer
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)["nc1"].numpy()
    np.testing.assert_allclose(rank1, want.nc1.values, rtol=1e-9)
    # rank 0 gathered the features in dataset order: the same decoders, the same numbers
    for v in ("sufficiency", "minimality", "sufficiency_heldout"):
        np.testing.assert_allclose(got[v].values, want[v].values, rtol=1e-9, atol=1e-12, err_msg=v)
    assert got.nc_n_samples.sel(split="train").values.tolist() == [[61, 61, 61]]
