"""Metrics ``dib`` (sufficiency and minimality of every layer of a trained network) and
``track`` (the thesis protocol: train, and after every k-th epoch measure every layer)."""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import xarray as xr

from usable import DataError, FitConfig, SourceData, SpecError, fit, load_networks, make_ensemble, progress

from .estimator import SPLITS, decoder_config, dib_variables, layers_text, measure
from .evaluation import classifier_for, loss_accuracy, nc_layer
from .features import as_network, layer_features, set_bn_mode
from .network import NetworkDecoder, parse_layers
from .progressive_store import EpochStore, spec_key
from .subset import balanced_subset

FIT_AND_EVAL = ("train values: decoders fitted and evaluated on the training split; test values: "
                "decoders fitted and evaluated on the test split (thesis section 2.3); "
                "sufficiency_heldout: fitted on train, evaluated on test")


def _var(data, dims, long_name, units="bit", **attrs):
    return xr.Variable(dims, np.asarray(data), {"long_name": long_name, "units": units, **attrs})


def _check_classes(data: SourceData, who: str) -> None:
    if data.target != "classes" or data.train.y.ndim != 1:
        raise DataError(f"{who} needs a single class target (sufficiency and relabellings are defined "
                         f"for classes); this source has a {data.target} target of shape {tuple(data.train.y.shape)}")
    if data.n_sources != 1:
        raise DataError(f"{who} analyses one network on one source; got {data.n_sources} sources "
                         f"({', '.join(data.names)}). Give one --source that yields one source.")


def measure_network(net, data: SourceData, layers: list[int], *, dec_cfg: FitConfig, bn_mode: str,
                    seed: int, minimality: bool = True, nc: bool = True, warm=None,
                    memory_limit_mb: float = 2048.0, eval_batch_size: int = 1024, desc: str = "dib"):
    """Everything measured at one moment of training, as (layer, split) arrays, plus the fitted
    decoders (for warm starts). Features are computed once per split and shared by NC, the
    sufficiency decoders and the minimality decoders. ``desc`` begins the progress descriptions
    (shown when ``dec_cfg.progress`` is on)."""
    C = int(data.n_classes)
    xs = {"train": data.train.xs[0], "test": data.test.xs[0]}
    ys = {"train": data.train.y, "test": data.test.y}
    feats = {s: layer_features(net, xs[s], layers, batch_size=eval_batch_size,
                               memory_limit_mb=memory_limit_mb / 2) for s in SPLITS}
    out: dict[str, Any] = {}
    logits = {}
    for k, s in enumerate(SPLITS):
        loss, acc, logits[s] = loss_accuracy(net, xs[s], ys[s], eval_batch_size)
        out.setdefault("loss", np.zeros(len(SPLITS)))[k] = loss
        out.setdefault("accuracy", np.zeros(len(SPLITS)))[k] = acc
    if nc:
        out["nc"] = _nc_per_layer(net, feats, ys, logits, layers, C, f"{desc}: neural collapse", dec_cfg.progress)
    res = measure(net, feats, ys, C, config=dec_cfg, seed=seed, bn_mode=bn_mode, minimality=minimality,
                  warm=warm, desc=desc)
    out["dib"] = res
    return out


def _nc_per_layer(net, feats, ys, logits, layers: list[int], C: int, desc: str, show: bool) -> dict[str, np.ndarray]:
    """Neural-collapse scalars of every cached layer on both splits, as (layer, split) arrays."""
    L = len(net.layer_names)
    nc_vals: dict[str, np.ndarray] = {}
    bar = progress(total=len(SPLITS) * len(layers), desc=f"{desc}, layers {layers_text(layers)}", enabled=show,
                   unit="layer")
    for k, s in enumerate(SPLITS):
        for j, l in enumerate(layers):
            h = feats[s][l]
            D = int(np.prod(h.shape[1:]))
            cls = classifier_for(net, D) if l == L - 1 else None
            for key, v in nc_layer(h.reshape(h.shape[0], -1), ys[s], C, logits[s], cls).items():
                nc_vals.setdefault(key, np.full((len(layers), len(SPLITS)), np.nan))[j, k] = v
            bar.update()
    bar.close()
    return nc_vals


def _layer_name(blocks: list[str], l: int) -> str:
    """h^0 is the input; h^l is the output of block l (1-based), i.e. blocks[l - 1]."""
    return "input" if l == 0 else blocks[l - 1]


def _dataset(m: dict[str, Any], layers: list[int], layer_names: list[str]) -> xr.Dataset:
    r = m["dib"]
    nd = r.digit_entropy.shape[1]
    dv = {
        **dib_variables(r),
        "loss": _var(m["loss"], ("split",), "main network cross-entropy", units="nat"),
        "accuracy": _var(m["accuracy"], ("split",), "main network accuracy", units="1"),
    }
    for key, arr in m.get("nc", {}).items():
        dv[f"nc_{key}" if not key.startswith("nc") else key] = _var(arr, ("layer", "split"), f"neural collapse: {key} (usable_nc)", units="1")
    ds = xr.Dataset(dv, coords={"layer": layers, "split": list(SPLITS), "digit": np.arange(nd),
                                "layer_name": ("layer", [_layer_name(layer_names, l) for l in layers])})
    ds.attrs["n_digits"] = r.n_digits
    ds.attrs["decoder_epochs"] = json.dumps(r.decoder_epochs)
    return ds


def _common_attrs(data, layers, bn_mode, dec_cfg, net) -> dict[str, Any]:
    return {"fit_and_evaluation": FIT_AND_EVAL, "bn_mode": bn_mode,
            "layer_meaning": "layer 0 = the raw input; layer l = output of block l; decoder = the network's suffix f^{L:l+1}",
            "blocks": list(net.layer_names), "decoder_fit": json.dumps(dec_cfg.to_attrs()),
            "relabelling": "thesis algorithm 2: within-class index in base C, least significant digit first; "
                           "N_D = smallest k with C^k >= largest class (integer arithmetic)",
            "n_classes": int(data.n_classes), "train_size": len(data.train), "test_size": len(data.test)}


def _dec_cfg(ctx, dib_epochs: int, dib_lr: float, dib_stop_loss: float) -> FitConfig:
    fc = ctx.fit_config
    return decoder_config(epochs=int(dib_epochs), lr=float(dib_lr), batch_size=fc.batch_size,
                          stop_loss=None if dib_stop_loss <= 0 else float(dib_stop_loss),
                          device=fc.device, threads=fc.threads, eval_batch_size=fc.eval_batch_size,
                          progress=fc.progress)


# ------------------------------------------------------------------------------------ dib
def _trained_networks(ctx, data, bn_mode: str, checkpoint: str):
    """(seed, network) pairs: loaded from a checkpoint written by ``nc:save=PATH``, or trained
    with the run's fit settings, one per seed."""
    if checkpoint:
        dec, shape, K = ctx.decoder_obj(), data.in_shape(0), int(data.n_classes)
        nets, meta = load_networks(checkpoint, lambda: dec.build(shape, K), expect={"in_shape": list(shape), "n_out": K})
        for seed, net in zip(meta.get("seeds", range(len(nets))), nets):
            yield int(seed), set_bn_mode(net, bn_mode)
        return
    dec = NetworkDecoder(ctx.decoder_obj(), bn_mode)
    for seed in ctx.seeds:
        res = ctx.fit(data, betas=[0.0], seeds=[seed], decoders=dec, desc=f"dib: main network, seed {seed}")
        yield int(seed), as_network(res.models[0])


def compute_dib(ctx, layers: str, dib_epochs: int, dib_lr: float, dib_stop_loss: float, bn_mode: str,
                minimality: bool, memory_limit_mb: float, nc: bool, checkpoint: str) -> xr.Dataset:
    """Train the decoder network (the run's fit settings) or load it from ``checkpoint``, then
    sufficiency and minimality of every layer."""
    data = ctx.data
    _check_classes(data, "dib")
    dec_cfg = _dec_cfg(ctx, dib_epochs, dib_lr, dib_stop_loss)
    per_seed, seeds = [], []
    for seed, net in _trained_networks(ctx, data, bn_mode, checkpoint):
        seeds.append(seed)
        ls = parse_layers(layers, len(net.layer_names))
        m = measure_network(net, data, ls, dec_cfg=dec_cfg, bn_mode=bn_mode, seed=seed, minimality=minimality,
                            nc=nc, memory_limit_mb=memory_limit_mb, eval_batch_size=ctx.fit_config.eval_batch_size,
                            desc=f"dib seed {seed}")
        per_seed.append(_dataset(m, ls, net.layer_names))
    ds = xr.concat(per_seed, dim="seed", data_vars="all", coords="minimal", compat="override",
                   combine_attrs="override").assign_coords(seed=seeds)
    ds.attrs.update(_common_attrs(data, ls, bn_mode, dec_cfg, net))
    ds.attrs["network"] = f"loaded from {checkpoint}" if checkpoint else "trained in this run (fit settings in attrs)"
    ds.attrs["headline"] = ["sufficiency", "minimality", "sufficiency_heldout"]
    return ds


# ------------------------------------------------------------------------------------ track
THESIS = dict(optimizer="adamw", lr=2e-3, lr_decay=1.0, weight_decay=0.01, stop_loss=0.02)


def compute_track(ctx, layers: str, dib_epochs: int, dib_lr: float, dib_stop_loss: float, bn_mode: str,
                  minimality: bool, memory_limit_mb: float, max_epochs: int, every: int, lr: float,
                  stop_loss: float, warm_start: bool, balance: bool, nc: bool, checkpoint: str) -> xr.Dataset:
    """Train with the thesis protocol; after every ``every``-th epoch (and the last) measure NC,
    sufficiency, minimality, loss and accuracy of every layer on train and test."""
    data = ctx.data
    _check_classes(data, "track")
    if len(ctx.seeds) != 1:
        raise SpecError(f"track follows one training run; got seeds {ctx.seeds}. Run once per seed (--seed 3).")
    if every < 1:
        raise SpecError(f"every={every}: measure every k-th epoch with k >= 1")
    seed = int(ctx.seeds[0])
    attrs: dict[str, Any] = {}
    if balance:
        data, info = balanced_subset(data, len(data.test), seed)
        attrs.update(info)
    attrs["balanced_training_subset"] = bool(balance)
    main_cfg = replace(ctx.fit_config, epochs=int(max_epochs), lr=float(lr),
                       stop_loss=None if stop_loss <= 0 else float(stop_loss), eval_every=0,
                       **{k: v for k, v in THESIS.items() if k not in ("lr", "stop_loss")})
    dec_cfg = _dec_cfg(ctx, dib_epochs, dib_lr, dib_stop_loss)
    dec = NetworkDecoder(ctx.decoder_obj(), bn_mode)
    spec = spec_key({"sources": [str(s) for s in ctx.sources], "decoder": str(ctx.decoder), "seed": seed,
                     "every": every, "layers": layers, "dib_epochs": dib_epochs, "dib_lr": dib_lr,
                     "lr": lr, "bn_mode": bn_mode, "balance": balance, "warm_start": warm_start,
                     "minimality": minimality, "nc": nc, "batch_size": main_cfg.batch_size})
    store = EpochStore(checkpoint) if checkpoint else None
    done, models, finished = 0, None, False
    if store is not None:
        store.check_spec(spec)
        state = store.load_state()
        if state is not None:
            done, finished = int(state["epochs_done"]), bool(state.get("finished", False))
            models = [make_ensemble(dec, data.in_shape(0), int(data.n_classes), [seed])]
            models[0].load_state_dict(state["model"])
    parts: list[xr.Dataset] = []
    warm = None
    measured: set[int] = set(store.done_epochs()) if store is not None else set()

    def record(e: int, model) -> None:
        nonlocal warm
        net = as_network(model)
        layer_list = parse_layers(layers, len(net.layer_names))
        m = measure_network(net, data, layer_list, dec_cfg=dec_cfg, bn_mode=bn_mode, seed=seed,
                            minimality=minimality, nc=nc, warm=warm if warm_start else None,
                            memory_limit_mb=memory_limit_mb, eval_batch_size=main_cfg.eval_batch_size,
                            desc=f"track epoch {e}/{max_epochs}")
        warm = m["dib"].models
        ds = _dataset(m, layer_list, net.layer_names).expand_dims(epoch=[e])
        parts.append(ds)
        measured.add(e)
        if store is not None:
            store.write_epoch(ds, e)

    class MeasureEveryKth:  # epoch-end callback of the one training loop
        def on_epoch_end(self, st) -> None:
            e = done + st.epoch + 1  # epochs trained so far
            if e % every == 0 or e == max_epochs:
                record(e, st.models[0])
            if store is not None:  # data first, then the state it belongs to (see progressive_store)
                store.save_state({"model": st.models[0].state_dict(), "epochs_done": e, "spec": spec})

    if not finished and done < max_epochs:
        result = fit(data, dec, betas=[0.0], seeds=[seed], config=replace(main_cfg, epochs=max_epochs - done),
                     callbacks=[MeasureEveryKth()], models=models, desc="track")
        models = result.models
        last = done + result.epochs_run
        if last not in measured:  # stopped by the loss threshold between two measured epochs
            record(last, models[0])
        if store is not None:
            # "finished" only when the loss threshold ended training; a larger max_epochs continues
            store.save_state({"model": models[0].state_dict(), "epochs_done": last, "spec": spec,
                              "finished": result.epochs_run < max_epochs - done})
    if store is not None:
        ds = store.combined()
    elif parts:
        ds = xr.concat(parts, dim="epoch", data_vars="minimal", coords="minimal", compat="override",
                       combine_attrs="override")
    else:
        raise DataError("no epoch was measured")
    net = as_network(models[0])
    ds.attrs.update(_common_attrs(data, sorted(int(l) for l in ds.layer.values), bn_mode, dec_cfg, net))
    ds.attrs.update(attrs)
    ds.attrs.update({"main_fit": json.dumps(main_cfg.to_attrs()), "measure_every": int(every),
                     "warm_start": bool(warm_start), "epochs_trained": int(ds.epoch.values.max()),
                     "checkpoint": checkpoint or "none",
                     "protocol": "thesis 2.3: AdamW, constant lr, until training loss <= stop_loss or max_epochs; "
                                 "no augmentation; batch norm mode " + bn_mode,
                     "headline": ["nc1", "sufficiency", "minimality", "accuracy"] if nc else
                                 ["sufficiency", "minimality", "accuracy"]})
    return ds
