"""The crop-width experiment (RINE paper figure 2B): the shipped configs run through `usable run`,
redundant information rises with the crop width, per-class redundancy (figure 2C) adds up."""
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from usable import get_entry, open_results
from usable.cli import make_cli
from usable_results.plots import plot_generic
from usable_vision.fixtures import write_cifar10

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

CONFIGS = Path(__file__).resolve().parents[1] / "core" / "usable" / "configs"


def _grid_widths(name):
    with open(CONFIGS / name, "rb") as fh:
        cfg = tomllib.load(fh)
    return cfg, list(cfg["grid"]["source.width"])


def _run(args):
    out = CliRunner().invoke(make_cli(), ["run", *args, "--no-progress"])
    assert out.exit_code == 0, out.output
    return out


def _cell_spec(cfg, width):
    """The sweep cell 'source.width = width': the config's source spec with that width."""
    (spec,) = cfg["source"]
    base = ",".join(kv for kv in spec.split(":", 1)[1].split(",") if not kv.startswith("width="))
    extra = ",verify=false" if spec.startswith("cifar10") else ""  # fixture files: not the official md5s
    return f"{spec.split(':', 1)[0]}:{base},width={width}{extra}"


def test_digits_crop_redundancy_rises_with_width(tmp_path):
    """The configs/crops-digits.toml cells, unchanged: no cell trips a guard (the decoders reach
    agreement: held-out divergence <= 0.02); W=8 (both crops = the whole image) gives the usable
    information of the full image to 0.1 bit (measured 0.05 below); W=2 is below W=6 by more than
    the seed sd."""
    cfg, widths = _grid_widths("crops-digits.toml")
    assert widths == [2, 3, 4, 5, 6, 7, 8]
    (beta,) = cfg["beta"]
    config, store = str(CONFIGS / "crops-digits.toml"), str(tmp_path / "crops.zarr")
    for w in (2, 4, 6, 8):
        metric = ["rine:per_class=true"] if w == 8 else []
        _run([*metric, "--config", config, "--source", _cell_spec(cfg, w), "--store", store, "--name", f"w{w}"])
    # the reference: usable information of the full 8×8 image, same decoder and training
    _run(["usable:pvi=false", "--config", config, "--source", "digits", "--store", store, "--name", "full"])

    res = open_results(store)
    ri = {w: res[f"w{w}"]["redundant_information"].sel(beta=beta).values for w in (2, 4, 6, 8)}
    for w in (2, 4, 6, 8):
        assert all(str(f) == "" for f in res[f"w{w}"]["flags"].values.ravel()), (w, res[f"w{w}"]["flags"].values)
        assert float(res[f"w{w}"]["divergence"].max()) <= 0.02
    full = res["full"]["usable_information"].sel(source="digits").values
    mean = {w: float(v.mean()) for w, v in ri.items()}
    sd = {w: float(v.std(ddof=1)) for w, v in ri.items()}
    print("RI by width:", {w: f"{mean[w]:.3f} ({sd[w]:.3f})" for w in mean}, "full-image UI", full.round(3))
    assert abs(mean[8] - float(full.mean())) < 0.1
    assert mean[6] - mean[2] > max(sd[2], sd[6])
    assert mean[2] < mean[4] < mean[6]
    assert res["w4"].attrs["source_width"] == 4 and res["w4"].attrs["source_overlap_columns"] == 0

    # per-class redundancy (figure 2C): −log2 p_train(c) minus the class's mean cross-entropy;
    # weighted by the test class frequencies it gives back the overall value exactly
    ds = res["w8"].load()
    src = get_entry("sources", "digits").create({})
    p_train = np.bincount(src.train.y.numpy(), minlength=10) / len(src.train)
    np.testing.assert_allclose(ds["null_entropy_per_class"].values, -np.log2(p_train), rtol=1e-12)
    w_test = np.bincount(src.test.y.numpy(), minlength=10) / len(src.test)
    per_class = ds["redundant_information_per_class"].sel(beta=beta).values  # (seed, class)
    np.testing.assert_allclose(per_class @ w_test, ds["redundant_information"].sel(beta=beta).values, atol=1e-9)
    assert list(ds["class_name"].values) == [str(c) for c in range(10)]

    # redundant information against width: the runs side by side on a `source_width` dim (the dim a
    # `usable sweep` over source.width makes), drawn by the generic plot
    curve = xr.concat([res[f"w{w}"][["redundant_information"]].load() for w in (2, 4, 6, 8)],
                      dim=xr.DataArray([2, 4, 6, 8], dims="source_width", name="source_width"))
    curve = curve.transpose("source_width", "seed", "beta")
    curve.attrs = {"headline": ["redundant_information"]}
    png = plot_generic(curve, str(tmp_path / "width.png"))
    assert mpimg.imread(png).shape[0] > 100


def test_cifar10_crop_config_runs_on_tiny_files(tmp_path, monkeypatch):
    """configs/crops-cifar10.toml end to end on a tiny CIFAR-10 in the published format: the
    narrowest and widest cells of its grid, one epoch and one seed, everything else unchanged."""
    write_cifar10(tmp_path / "data", train_per_class=1, test_per_class=1)
    monkeypatch.setenv("USABLE_DATA", str(tmp_path / "data"))
    cfg, widths = _grid_widths("crops-cifar10.toml")
    assert widths[0] == 8 and widths[-1] == 32 and cfg["decoder"] == "resnet18"
    store = str(tmp_path / "c.zarr")
    for w in (widths[0], widths[-1]):
        _run(["--config", str(CONFIGS / "crops-cifar10.toml"), "--source", _cell_spec(cfg, w),
              "--epochs", "1", "--seed", "0", "--store", store, "--name", f"w{w}"])
    res = open_results(store)
    for w in (8, 32):
        ds = res[f"w{w}"]
        assert ds.attrs["decoder"] == "resnet18" and ds.attrs["source_width"] == w
        assert list(ds["source"].values) == ["left", "right"]
        assert np.isfinite(ds["redundant_information"].values).all()
        # with 10 balanced test images the null is exactly log2 10
        assert float(ds["null_entropy"]) == pytest.approx(np.log2(10), abs=1e-12)


@pytest.mark.slow
def test_cifar10_crop_config_every_width_on_tiny_files(tmp_path, monkeypatch):
    write_cifar10(tmp_path / "data", train_per_class=1, test_per_class=1)
    monkeypatch.setenv("USABLE_DATA", str(tmp_path / "data"))
    cfg, widths = _grid_widths("crops-cifar10.toml")
    for w in widths:
        out = _run(["--config", str(CONFIGS / "crops-cifar10.toml"), "--source", _cell_spec(cfg, w), "--epochs", "1"])
        line = next(l for l in out.output.splitlines() if l.strip().startswith("redundant_information"))
        value = float(line.split()[2])
        # a smoke run on 10 images: only the range can be checked, I∩ ≤ H(Y) = log2 10
        assert np.isfinite(value) and value <= np.log2(10) + 1e-6
