"""Whole-process wall time of one CLI run, start-up included, against the floor every run pays
(``python -c "import torch"``) and, optionally, another installation of usable (an older checkout).

    python benchmarks/whole_process.py
    python benchmarks/whole_process.py --baseline /path/to/old/venv/bin/usable

Runs are interleaved (floor, usable[, baseline]) ``--repeats`` times; medians are printed and
written to benchmarks/results/whole_process.json with each run's printed I∩, so a faster run
that printed another number would show.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "whole_process.json"
ARGS = ["run", "rine", "--source", "pid:task=and", "--beta", "15", "--seed", "0"]


def timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    m = re.search(r"redundant_information\s+15(?:\.0+)?\s+(-?[\d.]+)", out.stdout)
    return wall, m.group(1) if m else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--usable", default=shutil.which("usable") or str(Path(sys.executable).with_name("usable")))
    ap.add_argument("--baseline", help="another usable executable to time the same command with")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    cmds = {"import torch (floor)": [sys.executable, "-c", "import torch"], "usable": [args.usable, *ARGS]}
    if args.baseline:
        cmds["baseline"] = [args.baseline, *ARGS]
    timed(cmds["usable"])  # warm the kernel cache and the file cache
    walls = {k: [] for k in cmds}
    values = {k: set() for k in cmds}
    for _ in range(args.repeats):
        for k, cmd in cmds.items():
            w, v = timed(cmd)
            walls[k].append(w)
            values[k].add(v)
    med = {k: statistics.median(v) for k, v in walls.items()}
    print(f"usable {' '.join(ARGS)}  ({args.repeats} interleaved runs, medians)")
    for k in cmds:
        extra = f"  I∩ printed: {', '.join(sorted(values[k]))}" if k != "import torch (floor)" else ""
        print(f"  {k:<22}{med[k]:>7.2f} s wall{extra}")
    if "baseline" in med:
        print(f"  baseline / usable: {med['baseline'] / med['usable']:.1f}×")
    print(f"  usable − floor: {med['usable'] - med['import torch (floor)']:.2f} s")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"command": ARGS, "repeats": args.repeats, "wall_s": walls, "median_s": med,
                               "printed": {k: sorted(v) for k, v in values.items()}}, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
