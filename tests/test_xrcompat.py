"""xarray without dask.array until someone uses dask: a run never imports it, and once dask.array
is imported xarray sees dask arrays as before."""
import subprocess
import sys


def test_a_run_does_not_import_dask_array():
    code = ("import sys; from usable.cli import main\n"
            "try:\n    main(['-q', 'run', 'rine', '--source', 'pid:task=and,n=300', '--beta', '5', '--epochs', '1'])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print('dask.array' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_dask_arrays_are_still_recognised_after_install():
    code = ("import numpy as np, xarray as xr\n"
            "from usable.xrcompat import install\n"
            "install()\n"
            "a = xr.DataArray(np.zeros(3), dims='x')\n"          # before dask.array: plain numpy
            "assert a.chunks is None\n"
            "import dask.array as da\n"
            "b = xr.DataArray(da.zeros(4, chunks=2), dims='x')\n"
            "assert b.chunks == ((2, 2),), b.chunks\n"
            "from xarray.namedarray.pycompat import mod_version\n"
            "assert str(mod_version('dask')) != '0.0.0'\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
