"""Regenerate the figures in docs/img/ from fresh runs (about a minute on 2 CPU cores):

    .venv/bin/python docs/img/make_images.py            # the shipped settings
    .venv/bin/python docs/img/make_images.py --epochs 3 --out /tmp/img   # a quick check

Each figure is what `usable results plot STORE RUN --kind K -o FILE` draws:

- rine-beta-sweep.png       RINE on rdnxor, β 0, 15, 50, 3 seeds            --kind all
- rine-training-curves.png  the same run's per-epoch curves                --kind training
- rine-table-a5.png         `usable run --config rine-table-a5`             --kind summary
- redundancy-matrix.png     `usable run --config neural-fig3`               --kind heatmap
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from usable.cli import make_cli

HERE = Path(__file__).resolve().parent

# (run name, `usable run` arguments)
RUNS = {
    "rine": ["rine", "--source", "pid:task=rdnxor", "--beta", "0,15,50", "--seed", "0-2"],
    "table": ["--config", "rine-table-a5"],
    "matrix": ["--config", "neural-fig3"],
}
# (file, run name, plot kind)
FIGURES = [
    ("rine-beta-sweep.png", "rine", "all"),
    ("rine-training-curves.png", "rine", "training"),
    ("rine-table-a5.png", "table", "summary"),
    ("redundancy-matrix.png", "matrix", "heatmap"),
]


def usable(args: list[str]) -> None:
    make_cli().main(args=args, prog_name="usable", standalone_mode=False)


def make_images(out: Path, store: Path, epochs: int | None = None, dpi: int = 120) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    fewer = ["--epochs", str(epochs)] if epochs else []
    for name, args in RUNS.items():
        # one torch thread: these decoders are tiny, more threads only add synchronisation
        usable(["run", *args, *fewer, "--threads", "1", "--no-progress", "--store", str(store), "--name", name])
    written = []
    for file, run, kind in FIGURES:
        usable(["results", "plot", str(store), run, "--kind", kind, "--dpi", str(dpi), "-o", str(out / file)])
        written.append(out / file)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the PNGs [docs/img]")
    parser.add_argument("--epochs", type=int, help="fewer epochs than the configs' (a quick check)")
    parser.add_argument("--dpi", type=int, default=120)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for path in make_images(opts.out, Path(tmp) / "images.zarr", opts.epochs, opts.dpi):
            print(f"{path}: {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
