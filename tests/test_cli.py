"""CLI: TOML configs with flag overrides, listing, plotting."""
import numpy as np
from click.testing import CliRunner

from usable import open_results
from usable.cli import make_cli


def test_config_file_and_flag_override(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('metric = "rine"\nsource = ["pid:task=xor,n=600"]\ndecoder = "linear"\n'
                   'beta = [0, 5]\nseed = "0-1"\nepochs = 4\nprogress = false\n')
    store = tmp_path / "r.zarr"
    out = CliRunner().invoke(make_cli(), ["run", "--config", str(cfg), "--epochs", "2", "--store", str(store)])
    assert out.exit_code == 0, out.output
    res = open_results(store)
    ds = res[res.runs[0]]
    assert ds.attrs["config_file"] == str(cfg)
    assert ds.sizes["epoch"] == 2                       # the flag won over the file's 4
    assert ds["beta"].values.tolist() == [0.0, 5.0] and ds["seed"].values.tolist() == [0, 1]
    # XOR: neither input alone carries information, so no decoder can use any (≤ sampling noise)
    assert np.all(ds["usable_information"].values < 0.05)


def test_unknown_config_key_is_named(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('metric = "rine"\nepoch = 3\n')
    out = CliRunner().invoke(make_cli(), ["run", "--config", str(cfg)])
    assert out.exit_code != 0 and "unknown keys ['epoch']" in out.output


def test_list_with_wildcards_and_parameters():
    out = CliRunner().invoke(make_cli(), ["list", "divergences", "l*"])
    assert out.exit_code == 0
    names = [line.split()[0] for line in out.output.splitlines()]
    assert names == ["l1", "l2"]
    out = CliRunner().invoke(make_cli(), ["list", "sources", "pid", "-v"])
    assert "task (str, default 'and') one of" in out.output and "(plugin pid, usable" in out.output


def test_plot_renders_a_png(tmp_path):
    store = tmp_path / "r.zarr"
    out = CliRunner().invoke(make_cli(), ["run", "rine", "--source", "pid:task=rdnxor,n=600", "--decoder", "linear",
                                          "--beta", "0,5", "--seed", "0-1", "--epochs", "2", "--no-progress",
                                          "--store", str(store)])
    assert out.exit_code == 0, out.output
    png = tmp_path / "p.png"
    out = CliRunner().invoke(make_cli(), ["results", "plot", str(store), "-o", str(png)])
    assert out.exit_code == 0, out.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
