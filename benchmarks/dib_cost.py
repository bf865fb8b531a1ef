"""Per-epoch cost of measuring sufficiency and minimality of every layer: the thesis's way vs this engine's.

Thesis way (Cheong 2025, fig. 2.4): for every layer, quantity (sufficiency, minimality) and split,
a separate network = the frozen encoder f^{l:1} + a fresh suffix, trained on the raw input, so
the frozen encoder runs forward at every step of every decoder fit.
Engine way (usable_dib): features h^l computed once per split, then one ``usable.fit`` per
(quantity, split) training the decoders of all layers together on the cached features.

Both train the same decoders for the same number of epochs (no early stop, so equal work) on
the same data. Prints a table and writes benchmarks/results/dib_cost.json.

    .venv/bin/python benchmarks/dib_cost.py [--decoder cnn_minus] [--epochs 5] [--repeats 1]
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import torch
from torch import nn

from usable import FitConfig, Objective, SourceData, Split, create, evaluate, fit
from usable_dib.estimator import SPLITS, SuffixDecoder, decoder_config
from usable_dib.features import as_network
from usable_dib.metrics import measure_network
from usable_dib.network import NetworkDecoder
from usable_dib.relabel import relabel
from usable_dib.subset import balanced_subset


class FrozenThenSuffix(nn.Module):
    """The thesis's decoder network for layer l: frozen f^{l:1} (no gradients) then a fresh suffix."""

    def __init__(self, prefix: nn.Module, suffix: nn.Module):
        super().__init__()
        self.prefix, self.suffix = prefix, suffix

    def forward(self, x):
        with torch.no_grad():
            h = self.prefix(x)
        return self.suffix(h)


class ThesisDecoder:
    def __init__(self, net, layer, bn_mode="batch"):
        self.net, self.layer, self.bn_mode = net, layer, bn_mode

    def build(self, in_shape, n_out):
        prefix = nn.Sequential(*[copy.deepcopy(b) for b in list(self.net.blocks.values())[:self.layer]])
        for p in prefix.parameters():
            p.requires_grad_(False)
        h_shape = prefix(torch.zeros(2, *in_shape)).shape[1:] if self.layer else in_shape
        return FrozenThenSuffix(prefix, SuffixDecoder(self.net, self.layer, self.bn_mode).build(h_shape, n_out))


def thesis_way(net, data, layers, cfg, C):
    for s in SPLITS:
        split = getattr(data, s)
        for y in (split.y, relabel(split.y, C)):
            for l in layers:  # one separate fit per layer, raw input every step
                d = SourceData(Split([split.xs[0]], y), Split([split.xs[0]], y), ["x"], "classes", C)
                res = fit(d, ThesisDecoder(net, l), betas=[0.0], seeds=[0], config=cfg)
                evaluate(res.models, [split.xs[0]], y, Objective("classes", C, y.shape[1] if y.ndim == 2 else None, 1), 1)


def engine_way(net, data, layers, cfg):
    measure_network(net, data, layers, dec_cfg=cfg, bn_mode="batch", seed=0, nc=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", default="digits")
    ap.add_argument("--decoder", default="cnn_minus")
    ap.add_argument("--epochs", type=int, default=5, help="decoder epochs per measurement")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "dib_cost.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    data = create("sources", a.source)
    data, _ = balanced_subset(data, len(data.test), 0)  # the thesis's training subset
    C = int(data.n_classes)
    # a main network after one epoch of the thesis protocol (the measurement cost does not depend on it)
    res = fit(data, NetworkDecoder(create("decoders", a.decoder)), seeds=[0],
              config=FitConfig(epochs=1, optimizer="adamw", lr=2e-3, lr_decay=1.0, weight_decay=0.01,
                               batch_size=128, progress=False, eval_every=0))
    net = as_network(res.models[0])
    layers = list(range(len(net.layer_names)))
    cfg = decoder_config(epochs=a.epochs, stop_loss=None, batch_size=128)
    rows = []
    for name, fn in (("thesis: fresh decoders on the raw forward path", lambda: thesis_way(net, data, layers, cfg, C)),
                     ("engine: cached features, layers in one fit", lambda: engine_way(net, data, layers, cfg))):
        times = []
        for _ in range(a.repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        rows.append({"method": name, "seconds_per_measured_epoch": min(times), "all_seconds": times})
    ratio = rows[0]["seconds_per_measured_epoch"] / rows[1]["seconds_per_measured_epoch"]
    print(f"{a.source}, {a.decoder}, layers {layers}, train {len(data.train)} / test {len(data.test)}, "
          f"decoder epochs {a.epochs}, threads {a.threads}")
    print(f"{'method':<50} {'s per measured epoch':>22}")
    for r in rows:
        print(f"{r['method']:<50} {r['seconds_per_measured_epoch']:>22.2f}")
    print(f"speed-up (thesis / engine): {ratio:.2f}x")
    out = {"source": a.source, "decoder": a.decoder, "layers": layers, "decoder_epochs": a.epochs,
           "train_size": len(data.train), "test_size": len(data.test), "threads": a.threads,
           "repeats": a.repeats, "rows": rows, "ratio_thesis_over_engine": ratio,
           "machine": platform.platform(), "torch": torch.__version__}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
