"""docs/your-own-model.md runs as written: the plain PyTorch loop and the Lightning example, each
as a script; their printed numbers are checked against the stored run and against values that
do not depend on training (the input layer's NC1, computed naively; its suffix decoders)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import usable

ROOT = Path(__file__).resolve().parents[1]
TEXT = (ROOT / "docs" / "your-own-model.md").read_text()
LINE = re.compile(r"epoch (\d+): NC1 (.*?) \| sufficiency ([-\d. ]+)")


def _block(start: str, end: str | None) -> str:
    section = TEXT[TEXT.index(start):TEXT.index(end) if end else None]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]


def _run(code: str, cwd: Path) -> dict[int, tuple[dict[str, float], list[float]]]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=cwd, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    got = {}
    for m in LINE.finditer(out.stdout):
        nc1 = {k: float(v) for k, v in (kv.split("=") for kv in m[2].split())}
        got[int(m[1])] = (nc1, [float(v) for v in m[3].split()])
    assert sorted(got) == [1, 2, 3], out.stdout
    return got, out.stdout


def _naive_input_nc1(code: str) -> float:
    """NC1 of the example's raw training images, from scratch (the recipe is the doc's own)."""
    ns: dict = {}
    exec(re.search(r"^C = 4.*?\n\n\n(def images.*?)\n\n\n", code, flags=re.S | re.M)[1], {"C": 4, **_imports()}, ns)
    x, y = (t.numpy() for t in ns["images"](120, 1).tensors)
    h = x.reshape(len(x), -1).astype(np.float64)
    mu = np.stack([h[y == c].mean(0) for c in range(4)])
    A = mu - h.mean(0)
    dev = h - mu[y]
    return float(np.trace(dev.T @ dev / len(h) @ np.linalg.pinv(A.T @ A / 4, rcond=1e-6, hermitian=True)) / 4)


def _imports():
    import torch
    from torch.utils.data import TensorDataset
    return {"torch": torch, "TensorDataset": TensorDataset}


def test_the_plain_loop_and_the_lightning_example_run(tmp_path):
    plain_code = _block("## A plain PyTorch loop", "## Lightning")
    plain, stdout = _run(plain_code, tmp_path)
    assert "run my-cnn: epochs [1, 2, 3], decoders: suffix" in stdout
    truth = _naive_input_nc1(plain_code)
    ds = usable.open_results(tmp_path / "runs.zarr")["my-cnn"].load()
    assert ds.layer_name.values.tolist() == ["input", "block1", "block2", "pool"]
    for e, (nc1, suff) in plain.items():
        assert nc1["input"] == pytest.approx(truth, abs=1e-6)            # does not depend on the weights
        s = ds.sel(epoch=e, split="train")
        assert list(nc1.values()) == pytest.approx(s.nc1.values.tolist(), abs=1e-6)
        assert suff == pytest.approx(s.sufficiency.values.tolist(), abs=1e-4)
        assert max(suff) <= 2.0                                           # H(y) = log2 4 for balanced labels
    assert (ds.minimality.values >= 0).all() and np.isfinite(ds.minimality.values).all()
    # the input's suffix decoders are fresh copies of the whole network: the same at every epoch
    assert len({suff[0] for _, suff in plain.values()}) == 1

    pytest.importorskip("lightning")
    lightning, _ = _run(_block("## Lightning", "## What is measured"), tmp_path)
    ds = usable.open_results(tmp_path / "runs.zarr")["my-cnn-lightning"].load()
    assert ds.attrs["kind"] == "tracker" and ds.epoch.values.tolist() == [1, 2, 3]
    for e, (nc1, suff) in lightning.items():
        assert nc1["input"] == pytest.approx(truth, abs=1e-6)
        assert suff[0] == plain[e][1][0]                                  # same data, same decoders
        assert list(nc1.values()) == pytest.approx(ds.nc1.sel(epoch=e, split="train").values.tolist(), abs=1e-6)
