"""Writers killed mid-write leave staged parts behind; the next writer removes them (their locks
are free once the writer is dead), never a live writer's, and a successful write leaves nothing
in ``.staging``."""
import signal
import subprocess
import sys
import textwrap

import numpy as np
import xarray as xr

from usable import Results, open_results, write_run

# A writer that stops forever after its data is staged and before its commit (the rename).
WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np, xarray as xr
    import usable
    from usable.store import Results
    real = Results.commit
    def stall(self, stage, run_id, replace=False):
        print("staged", flush=True)
        time.sleep(600)
    Results.commit = stall
    ds = xr.Dataset({"v": ("seed", np.arange(3.0))}, coords={"seed": [0, 1, 2]}, attrs={"metric": "usable"})
    usable.write_run(sys.argv[1], ds, run_id=sys.argv[2])
""")


def _dataset():
    return xr.Dataset({"v": ("seed", np.arange(3.0))}, coords={"seed": [0, 1, 2]}, attrs={"metric": "usable"})


def _start_and_kill(store, run_id):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(store), run_id], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "staged"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_five_kills_mid_write_then_one_run_leaves_no_staging(tmp_path):
    store = tmp_path / "r.zarr"
    write_run(store, _dataset(), run_id="kept")
    for k in range(5):
        _start_and_kill(store, f"killed{k}")
        # each writer first removes what the dead one before it staged: one stale part at most
        assert [p.name.split(".")[0] for p in (store / ".staging").glob("*.part")] == [f"killed{k}"]
    assert open_results(store).runs == ["kept"]  # staged data is never visible as a run
    write_run(store, _dataset(), run_id="next")
    assert not (store / ".staging").exists()
    assert open_results(store).runs == ["kept", "next"]
    np.testing.assert_array_equal(open_results(store)["kept"].v.values, [0.0, 1.0, 2.0])


def test_a_live_writers_staging_is_left_alone(tmp_path):
    store = tmp_path / "r.zarr"
    write_run(store, _dataset(), run_id="first")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(store), "slow"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "staged"
        write_run(store, _dataset(), run_id="second")  # cleans stale parts, but this one's writer lives
        assert len(list((store / ".staging").glob("slow.*.part"))) == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    Results(store).clean_staging()
    assert not list(store.glob(".staging/*.part"))
