"""Which divergence and β let the crop-width sweep (configs/crops-digits.toml) reach agreement
without losing information: the evidence behind that config's settings (docs/vision.md).

At width 8 both crops are the whole image, so the redundant information must equal the image's own
usable information (the run's β = 0 decoders measure it: ``min I_V``); at width ≤ 4 the crops share
no column. Each variant runs every width with the config's training (mlp, Adam lr 0.005, 30 epochs,
seeds 0-2) and prints I∩ per width, the largest held-out divergence (in that divergence's own
units, the unit the agreement guard reads), the number of flagged cells, I∩(8) − min I_V(8), and
the held-out total variation between the two constrained decoders at widths 4 and 8 (one unit for
every divergence).

    python benchmarks/rine_crops_digits.py          # 6 variants × 7 widths, about 1 min on 2 cores

Writes benchmarks/results/rine_crops_digits.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = (2, 3, 4, 5, 6, 7, 8)
VARIANTS = {  # name: settings that replace the config's; the last is what the config ships
    "paper: l1, β 5, exp γ 0.97": dict(divergence="l1", betas=[5], schedule="exp"),
    "l1, β 5, exp γ 0.9": dict(divergence="l1", betas=[5], schedule="exp:gamma=0.9"),
    "engine default: tv:smooth=0.03, β 50, γ 0.97": dict(divergence="tv:smooth=0.03", betas=[50], schedule="exp"),
    "tv:smooth=0.03, β 50, γ 0.9": dict(divergence="tv:smooth=0.03", betas=[50], schedule="exp:gamma=0.9"),
    "js, β 50, γ 0.9": dict(divergence="js", betas=[50], schedule="exp:gamma=0.9"),
    "config: hellinger:squared=true, β 50, γ 0.9": dict(divergence="hellinger:squared=true", betas=[50],
                                                         schedule="exp:gamma=0.9"),
}


def variant_spec(settings: dict):
    from dataclasses import replace
    from usable import RunSpec, load_config, parse_betas, parse_spec
    base = RunSpec.from_options(load_config("crops-digits"), progress=False)
    return replace(base, divergence=parse_spec(settings["divergence"]), schedule=parse_spec(settings["schedule"]),
                   betas=parse_betas(settings["betas"]))


def held_out_tv(settings: dict, width: int) -> float:
    """Largest (over seeds) mean held-out total variation between the two decoders at the config's β.
    Fits again (the same seeds, so the same decoders as run_variant's): a metric returns its
    Dataset, not its decoders."""
    from usable import Objective, RunContext, create, evaluate
    ctx = RunContext(variant_spec(settings).with_param("source.width", width))
    fit = ctx.fit()
    data = ctx.data
    tv = Objective("classes", data.n_classes, None, 2, create("divergences", "tv"))
    _, div = evaluate(fit.models, data.test.xs, data.test.y, tv, fit.members.size, with_divergence=True)
    return float(div.max())


def run_variant(settings: dict) -> list[dict]:
    from usable import RunContext, run_metric
    spec = variant_spec(settings)
    rows = []
    for width in WIDTHS:
        ds = run_metric(RunContext(spec.with_param("source.width", width)))
        flags = [f for f in ds.flags.values.ravel() if str(f)]
        rows.append({"width": width, "redundant_information": float(ds.redundant_information.mean()),
                     "min_usable_information": float(ds.usable_information.min("source").mean()),
                     "max_divergence": float(ds.divergence.max()), "flagged": len(flags)})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "rine_crops_digits.json"))
    args = ap.parse_args()
    import warnings
    warnings.simplefilter("ignore")  # the flagged cells are counted in the table
    report = {}
    print(f"{'variant':46s} " + " ".join(f"{'w' + str(w):>6s}" for w in WIDTHS) +
          f" {'max D':>6s} {'flagged':>7s} {'w8 − I_V':>8s} {'TV w4':>6s} {'TV w8':>6s} {'time s':>6s}")
    for name, settings in VARIANTS.items():
        t = time.perf_counter()
        rows = run_variant(settings)
        dt = time.perf_counter() - t
        gap = rows[-1]["redundant_information"] - rows[-1]["min_usable_information"]
        tv = {w: held_out_tv(settings, w) for w in (4, 8)}
        print(f"{name:46s} " + " ".join(f"{r['redundant_information']:6.3f}" for r in rows) +
              f" {max(r['max_divergence'] for r in rows):6.3f} {sum(r['flagged'] for r in rows):7d}"
              f" {gap:+8.3f} {tv[4]:6.3f} {tv[8]:6.3f} {dt:6.1f}", flush=True)
        report[name] = {"settings": settings, "seconds": dt, "w8_minus_usable": gap, "held_out_tv": tv, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"seeds": [0, 1, 2], "variants": report}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
