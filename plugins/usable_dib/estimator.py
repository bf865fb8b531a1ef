"""Sufficiency I_V(h^l → y) and minimality I_V(h^l → Dec(x, Y)) per layer (thesis section 2.2).

For layer l the decoder family is the network's own suffix f^{L:l+1} (``Network.suffix(l)``,
re-initialised, or the previous measurement's fitted decoder when warm-starting). All decoders
are trained by ``usable.fit`` on cached frozen features: one fit call per (quantity, split) with
one source per layer, so every layer's decoder trains in the same loop.

Thesis protocol: the ``train`` values come from decoders fitted and evaluated on the training
split, the ``test`` values from decoders fitted and evaluated on the test split (in-sample cross
-entropy after training, in eval mode with fixed weights). The entropy terms are the empirical
entropies of the labels of that split. ``sufficiency_heldout`` additionally evaluates the
train-fitted sufficiency decoders on the test split (H_V(Y|∅) = train class frequencies on test).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import torch
import xarray as xr
from torch import nn

from usable import (FitConfig, Network, Objective, SourceData, Split, class_null_logp, entropy_bits, evaluate,
                    fit)

from .features import set_bn_mode
from .relabel import digit_entropies, relabel

SPLITS = ("train", "test")


def _last_linear(module: nn.Module) -> tuple[nn.Module, str, nn.Linear] | None:
    found = None
    for parent in module.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                found = (parent, name, child)
    return found


class SuffixDecoder:
    """Decoder plugin object for layer l: ``build`` returns the suffix f^{L:l+1} of ``net`` with
    fresh weights and its last linear layer sized to n_out (N_D·C outputs for the relabellings).
    Warm starts do not come through here: the fitted ensembles are handed back to ``fit``."""

    def __init__(self, net: Network, layer: int, bn_mode: str = "batch"):
        self.net, self.layer, self.bn_mode = net, int(layer), bn_mode

    def build(self, in_shape, n_out) -> nn.Module:
        model = self.net.suffix(self.layer, reinit=True)
        found = _last_linear(model)
        if found is None:
            raise TypeError(f"the suffix after layer {self.layer} has no linear output layer to size")
        parent, name, lin = found
        if lin.out_features != n_out:
            setattr(parent, name, nn.Linear(lin.in_features, n_out, bias=lin.bias is not None))
        return set_bn_mode(model, self.bn_mode)

    def __repr__(self):
        return f"SuffixDecoder(layer={self.layer})"


def decoder_config(**changes: Any) -> FitConfig:
    """The thesis's decoder training: like the main network (AdamW, constant lr 2e-3, until the
    training loss is <= 0.02 or the epoch limit)."""
    base = FitConfig(epochs=30, batch_size=128, optimizer="adamw", lr=2e-3, lr_decay=1.0,
                     weight_decay=0.01, eval_every=0, stop_loss=0.02, progress=False)
    return replace(base, **changes)


@dataclass
class DIBResult:
    """Per-layer values, arrays (layer, split) in bits; ``models`` for warm starts."""

    layers: list[int]
    sufficiency: np.ndarray
    minimality: np.ndarray
    cross_entropy: np.ndarray
    label_entropy: np.ndarray
    minimality_digits: np.ndarray        # (layer, split, digit) uncapped H(digit) − CE
    digit_entropy: np.ndarray            # (split, digit)
    sufficiency_heldout: np.ndarray      # (layer,)
    n_digits: list[int]
    decoder_epochs: dict[str, int] = field(default_factory=dict)
    models: dict[str, list[nn.Module]] = field(default_factory=dict)


def _fit_layers(feats: dict[int, torch.Tensor], y: torch.Tensor, n_classes: int, decoders, cfg: FitConfig,
                seed: int, warm: list[nn.Module] | None, desc: str = "dib"):
    """One decoder per layer, fitted and evaluated on the same split (the thesis's in-sample CE):
    returns the fit and each layer's cross-entropy in bits ((layer,) or (layer, head))."""
    layers = list(feats)
    split = Split([feats[l] for l in layers], y)
    data = SourceData(split, split, [f"h{l}" for l in layers], "classes", n_classes)
    res = fit(data, decoders, betas=[0.0], seeds=[seed], config=cfg, models=warm, desc=desc)
    return res, res.to_dataset().cross_entropy.isel(dataset=0, seed=0, beta=0).values


def layers_text(layers: Sequence[int]) -> str:
    """'0-4' for a run of consecutive layers, else '0+2+3' (the spec grammar's own forms)."""
    ls = sorted(int(l) for l in layers)
    if len(ls) > 2 and ls == list(range(ls[0], ls[-1] + 1)):
        return f"{ls[0]}-{ls[-1]}"
    return "+".join(map(str, ls))


def _fit_labels(desc: str, layers: Sequence[int], minimality: bool, digits: dict[str, torch.Tensor]) -> dict[str, str]:
    """Progress description of every decoder fit, numbered in the order they run: the fits of one
    measurement take minutes in all (each trains every layer's decoder at once), so a log says
    which of them is running."""
    keys = [f"{q}_{s}" for s in SPLITS for q in ("sufficiency", "minimality")
            if q == "sufficiency" or (minimality and digits[s].shape[1] > 0)]
    return {k: f"{desc}: decoders {i}/{len(keys)} ({k.replace('_', ', ')} split, layers {layers_text(layers)})"
            for i, k in enumerate(keys, 1)}


def measure(net: Network | None, feats: dict[str, dict[int, torch.Tensor]], ys: dict[str, torch.Tensor],
            n_classes: int, *, config: FitConfig | None = None, seed: int = 0, bn_mode: str = "batch",
            minimality: bool = True, warm: dict[str, list[nn.Module]] | None = None,
            decoders: dict[int, Any] | None = None, desc: str = "dib") -> DIBResult:
    """Sufficiency and minimality for the layers in ``feats[split]`` (dict layer -> h^l).

    ``warm``: fitted decoder ensembles from an earlier call (keys ``sufficiency_train`` ...),
    continued instead of re-initialised. ``decoders``: the decoder family of each layer (dict
    layer -> decoder object with ``build(in_shape, n_out)``, e.g. probe heads for a network that
    is not a chain of blocks); default: fresh copies of ``net``'s own suffix (``SuffixDecoder``).
    ``desc`` begins the progress descriptions (shown when ``config.progress`` is on).
    """
    cfg = config or decoder_config()
    layers = sorted(feats["train"])
    warm = warm or {}
    L, S = len(layers), len(SPLITS)
    suff = np.zeros((L, S))
    ce = np.zeros((L, S))
    h_y = np.zeros(S)
    digits = {s: relabel(ys[s], n_classes) for s in SPLITS}
    nd_max = max(d.shape[1] for d in digits.values())
    mini = np.zeros((L, S))
    mini_d = np.full((L, S, nd_max), np.nan)
    h_d = np.full((S, nd_max), np.nan)
    models, epochs = {}, {}
    decs = ([decoders[l] for l in layers] if decoders is not None
            else [SuffixDecoder(net, l, bn_mode) for l in layers])
    labels = _fit_labels(desc, layers, minimality, digits)
    for k, s in enumerate(SPLITS):
        f, y = feats[s], ys[s]
        h_y[k] = entropy_bits(y.numpy())
        key = f"sufficiency_{s}"
        res, ce[:, k] = _fit_layers(f, y, n_classes, decs, cfg, seed, warm.get(key), labels[key])
        suff[:, k] = h_y[k] - ce[:, k]
        models[key], epochs[key] = res.models, res.epochs_run
        if s == "train":
            res_train = res
        if minimality and digits[s].shape[1] > 0:
            dg = digits[s]
            nd = dg.shape[1]
            h_d[k, :nd] = digit_entropies(dg)
            key = f"minimality_{s}"
            res, ce_d = _fit_layers(f, dg, n_classes, decs, cfg, seed, warm.get(key), labels[key])  # (layer, digit)
            mini_d[:, k, :nd] = h_d[k, :nd][None, :] - ce_d
            # V-information is >= 0: a decoder can always ignore h; capped per digit
            mini[:, k] = np.clip(mini_d[:, k, :nd], 0.0, None).mean(axis=1)
            models[key], epochs[key] = res.models, res.epochs_run
        elif not minimality:
            mini[:, k] = np.nan
    # train-fitted sufficiency decoders on the test split: held-out usable information
    logp, _ = evaluate(res_train.models, [feats["test"][l] for l in layers], ys["test"],
                       Objective("classes", n_classes, None, len(layers)), 1, cfg.eval_batch_size)
    null, _ = class_null_logp(ys["train"], ys["test"], n_classes)
    held = float(-null.double().mean()) - (-logp[0].double().mean(dim=1).numpy())
    return DIBResult(layers=layers, sufficiency=suff, minimality=mini, cross_entropy=ce, label_entropy=h_y,
                     minimality_digits=mini_d, digit_entropy=h_d, sufficiency_heldout=held,
                     n_digits=[int(digits[s].shape[1]) for s in SPLITS], decoder_epochs=epochs, models=models)


def dib_variables(r: DIBResult, decoder: str = "suffix decoder") -> dict:
    """The arrays of a DIBResult as labelled variables (dims layer, split[, digit]): the one
    definition ``dib`` and the tracker both store. ``decoder`` names what decoded each layer."""
    def var(data, dims, long_name):
        return xr.Variable(dims, np.asarray(data), {"long_name": long_name, "units": "bit"})
    return {
        "sufficiency": var(r.sufficiency, ("layer", "split"), f"sufficiency I_V(h^l → y) = H(y) − CE of the {decoder}"),
        "minimality": var(r.minimality, ("layer", "split"),
                          "minimality I_V(h^l → Dec(x,Y)): mean over digits of max(0, H(digit) − CE)"),
        "cross_entropy": var(r.cross_entropy, ("layer", "split"), "cross-entropy of the sufficiency decoder"),
        "label_entropy": var(r.label_entropy, ("split",), "empirical entropy H(y) of the split's labels"),
        "minimality_digit": var(r.minimality_digits, ("layer", "split", "digit"),
                                "H(digit) − CE of each relabelling head (uncapped; NaN where a split has fewer digits)"),
        "digit_entropy": var(r.digit_entropy, ("split", "digit"), "empirical entropy of each relabelling digit"),
        "sufficiency_heldout": var(r.sufficiency_heldout, ("layer",),
                                   f"I_V(h^l → y) of the train-fitted {decoder} on the test split"),
    }
