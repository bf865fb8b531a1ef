"""all_reduce_states across two real torch.distributed (gloo) processes equals one pass over all data."""
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from usable_nc import NCAccumulator, all_reduce_states

DIMS = {"wide": 40, "narrow": 6}  # two_pass and gram layers in one bucket


def _data():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 5, size=300)
    y[:5] = np.arange(5)
    mus = rng.normal(size=(5, 40)) * 2 + 4
    H = mus[y] + rng.normal(size=(300, 40))
    return torch.from_numpy(H), torch.from_numpy(y)


def _accs():
    return {"wide": NCAccumulator(5, method="two_pass", name="wide"),
            "narrow": NCAccumulator(5, method="gram", name="narrow")}


def _feed(accs, H, y, pass_no):
    for name, acc in accs.items():
        h = H[:, :DIMS[name]]
        (acc.update_pass1 if pass_no == 1 else acc.update_pass2)(h, y)


def _worker(rank, world, init_file, out_file):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    H, y = _data()
    idx = torch.arange(rank, len(y), world)  # interleaved shards of unequal class make-up
    accs = _accs()
    _feed(accs, H[idx], y[idx], 1)
    all_reduce_states(accs)
    for a in accs.values():
        a.finalize_means()
    _feed(accs, H[idx], y[idx], 2)
    all_reduce_states(accs)
    if rank == 0:
        torch.save({k: {m: v for m, v in a.compute().items() if isinstance(v, float)} for k, a in accs.items()},
                   out_file)
    dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_two_processes_reduce_to_the_single_process_answer(tmp_path):
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    out = tmp_path / "rank0.pt"
    # fork: the children reuse the imported modules (spawn would re-import torch per process)
    mp.start_processes(_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True,
                       start_method="fork")
    got = torch.load(out, weights_only=True)
    H, y = _data()
    accs = _accs()
    _feed(accs, H, y, 1)
    for a in accs.values():
        a.finalize_means()
    _feed(accs, H, y, 2)
    for name, acc in accs.items():
        want = acc.compute()
        for k in ("nc1", "trace_quotient", "cdnv_mean", "nc2_etf_error", "ncc_error"):
            assert got[name][k] == pytest.approx(want[k], rel=1e-12), (name, k)


def test_all_reduce_without_a_process_group_says_how_to_fix():
    with pytest.raises(RuntimeError, match="init_process_group"):
        all_reduce_states([NCAccumulator(3)])
