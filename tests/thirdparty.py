"""Builds a real third-party plugin distribution on disk: a package plus its .dist-info with an
entry point in the ``usable`` group, exactly what `pip install` of a plugin leaves behind."""
from __future__ import annotations

import textwrap
from pathlib import Path

PLUGIN_CODE = '''
"""A third-party usable plugin: one source, decoder, divergence, schedule, metric and command."""
from typing import Annotated

import click
import torch
from torch import nn

import usable
from usable import SourceData, Split


def make_copy_bits(n: int = 2000, flip: Annotated[float, "probability that X2's copy is flipped"] = 0.0,
                   seed: int = 0):
    """Two sources that both copy a uniform bit; X2's copy is flipped with probability ``flip``."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x2 = torch.where(torch.rand(n, generator=g) < flip, 1 - y, y)
    xs = [nn.functional.one_hot(y, 2).float(), nn.functional.one_hot(x2, 2).float()]
    k = int(0.8 * n)
    return SourceData(Split([x[:k] for x in xs], y[:k]), Split([x[k:] for x in xs], y[k:]),
                      ["bit", "noisy_bit"], "classes", 2)


class Logistic:
    def build(self, in_shape, n_out):
        return nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(in_shape).prod()), n_out))


@usable.hookimpl
def register_sources(register):
    register("copy_bits", make_copy_bits)


@usable.hookimpl
def register_decoders(register):
    register("logistic", Logistic, help="plain logistic regression (third-party)")


@usable.hookimpl
def register_divergences(register):
    register("sqdiff", lambda: (lambda p, q: ((p - q) ** 2).sum(-1)), targets=("classes",))


@usable.hookimpl
def register_schedules(register):
    register("half", lambda: (lambda t, epochs: 0.5))


@usable.hookimpl
def register_metrics(register):
    def compute(ctx, scale: float = 1.0):
        import xarray as xr
        return xr.Dataset({"n_sources": xr.Variable((), ctx.data.n_sources * scale,
                                                      {"units": "1", "long_name": "number of sources"})})
    register("count_sources", compute)


@usable.hookimpl
def register_commands(cli):
    @cli.command("hello")
    def hello():
        """Say hello from a third-party plugin."""
        click.echo("hello from thirdparty")
'''


def build_distribution(root: Path, dist: str = "usable-thirdparty", package: str = "usable_thirdparty",
                       version: str = "1.2.3", ep_name: str = "thirdparty", code: str = PLUGIN_CODE) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    pkg = root / package
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(code))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[usable]\n{ep_name} = {package}\n")
    (info / "top_level.txt").write_text(package + "\n")
    return root
