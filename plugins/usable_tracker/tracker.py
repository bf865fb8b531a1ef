"""``usable.Tracker``: neural collapse and the decodable information bottleneck of any model,
measured from any training loop, written per epoch into a ``track``-shaped run.

Each measurement runs in passes of its own with the weights as they are: the model in eval mode
(batch norm uses its running statistics and does not update them; dropout is off), no
gradients, forward hooks only while it runs, every submodule's train/eval flag and the random
number generators (torch CPU and CUDA, numpy, Python) restored afterwards, so training continues
exactly as without the tracker. The training loader is not iterated (see ``data.py``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import shutil
import tempfile
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from usable import DataError, SpecError, create, environment_attrs, now_iso, plugin

from .chain import Chain, find_chain
from .data import MeasureData, gather_rows, world
from .dataset import SPLITS, epoch_dataset
from .features import collect
from .layers import INPUT, POOLS, auto_layers, classifier_of, modes_kept, parse_pool, pool_features
from .measure import loss_accuracy, nc_split
from .runs import RunWriter

METRICS = ("nc", "dib")
DECODERS = ("auto", "suffix", "probe")
FIT_AND_EVAL = ("train values: decoders fitted and evaluated on the training split; test values: "
                "decoders fitted and evaluated on the test split (thesis section 2.3); "
                "sufficiency_heldout: fitted on train, evaluated on test")
MEASUREMENT = ("separate passes after the epoch with the weights fixed: eval mode (batch norm uses its running "
               "statistics and does not update them), no gradients, hooks removed afterwards, every module's "
               "train/eval flag and the random number generators restored")


@contextlib.contextmanager
def untouched(model: nn.Module) -> Iterator[None]:
    """Eval mode, and afterwards the modes and every random number generator as they were."""
    py, npy = random.getstate(), np.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=cuda), torch.inference_mode(False), modes_kept(model):
            yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)


def _unwrap(model: nn.Module) -> nn.Module:
    from torch.nn.parallel import DataParallel, DistributedDataParallel
    while isinstance(model, (DataParallel, DistributedDataParallel)):
        model = model.module
    return model


def _reorder(res, order: list[int]):
    """A DIBResult with its layer axis in ``order`` (positions in the result's own sorted order)."""
    take = lambda a: np.asarray(a)[order]  # noqa: E731
    return dataclasses.replace(res, layers=[res.layers[i] for i in order], sufficiency=take(res.sufficiency),
                               minimality=take(res.minimality), cross_entropy=take(res.cross_entropy),
                               minimality_digits=take(res.minimality_digits),
                               sufficiency_heldout=take(res.sufficiency_heldout))


class Float32:
    """A decoder whose networks are float32 (the decoders train on float32 features even when the
    measured model is float64; a suffix copy would keep the model's dtype)."""

    def __init__(self, decoder):
        self.decoder = decoder

    def build(self, in_shape, n_out) -> nn.Module:
        return self.decoder.build(in_shape, n_out).float()

    def __repr__(self):
        return repr(self.decoder)


class Tracker:
    """Measure ``model``'s layers on ``train`` and ``test`` after every ``every``-th epoch.

    ``layers``: module paths (``"layer3"``, ``"layer3.1.conv2"``; ``usable.list_layers(model)``
    lists them), plus ``"input"`` and ``"penultimate"``, or ``"auto"``. ``train``/``test``: a
    ``DataLoader``, a ``Dataset`` or ``(x, y)`` tensors; measured in dataset order, never by
    iterating the training loader. ``metrics``: ``"nc"`` (neural collapse, nc plugin) and/or
    ``"dib"`` (sufficiency and minimality, dib plugin). ``pool``: how a (B, C, H, W) output
    becomes features: ``full`` (flattened), ``avg`` or ``max`` (global, C features); one for all
    or a dict per layer. ``decoder``: DIB's decoder family: ``suffix`` (fresh copies of the
    model's own blocks after the layer; needs a chain, see ``chain.py``), ``probe`` (the decoder
    ``probe``, a registry spec such as ``mlp:hidden=128`` or ``linear``, on the pooled features)
    or ``auto`` (suffix where the layers cut a chain, else probe). ``store``/``run``: a results
    store and run name; an existing run with the same settings is continued. Under
    ``torch.distributed`` each process measures its share, the statistics are merged and only
    rank 0 fits the DIB decoders and writes.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str] | str = "auto", *, train, test, n_classes: int,
                 store=None, run: str | None = None, every: int = 1, metrics: Sequence[str] = METRICS,
                 pool: str | dict = "full", decoder: str = "auto", probe: str = "mlp:hidden=128",
                 dib_epochs: int = 30, dib_lr: float = 2e-3, dib_stop_loss: float = 0.02, dib_batch_size: int = 128,
                 bn_mode: str = "batch", minimality: bool = True, warm_start: bool = False, seed: int = 0,
                 rank_tol: float = 1e-6, weighting: str = "sample", nc_method: str = "auto", gram_max_dim: int = 512,
                 batch_size: int = 1024, device=None, memory_limit_mb: float = 2048.0,
                 batch: Callable | None = None, output: Callable | None = None,
                 class_names: Sequence[str] | None = None, attrs: dict | None = None):
        if not isinstance(model, nn.Module):
            raise SpecError(f"Tracker measures a torch.nn.Module, got {type(model).__name__}")
        self.model = _unwrap(model)
        metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
        bad = [m for m in metrics if m not in METRICS]
        if bad or not metrics:
            raise SpecError(f"metrics={list(metrics)}: choose from {', '.join(METRICS)} (e.g. metrics=('nc', 'dib'))")
        if int(every) < 1:
            raise SpecError(f"every={every}: measure every k-th epoch with k >= 1")
        if decoder not in DECODERS:
            raise SpecError(f"decoder={decoder!r}: choose one of {', '.join(DECODERS)}")
        if bn_mode not in ("batch", "running"):
            raise SpecError(f"bn_mode={bn_mode!r}: choose 'batch' (decoders normalize with batch statistics, as the "
                            "thesis) or 'running'")
        if int(n_classes) < 2:
            raise SpecError(f"n_classes={n_classes}: a class target needs at least 2 classes")
        self.n_classes, self.every, self.metrics = int(n_classes), int(every), tuple(sorted(set(metrics)))
        self.decoder, self.probe, self.seed = decoder, probe, int(seed)
        self.dib_options = dict(epochs=int(dib_epochs), lr=float(dib_lr), batch_size=int(dib_batch_size),
                                stop_loss=None if dib_stop_loss <= 0 else float(dib_stop_loss))
        self.bn_mode, self.minimality, self.warm_start = bn_mode, bool(minimality), bool(warm_start)
        self.nc_options = dict(rank_tol=float(rank_tol), weighting=weighting, method=nc_method,
                               gram_max_dim=int(gram_max_dim))
        plugin("nc").NCAccumulator(int(n_classes), **self.nc_options)  # bad NC settings fail now, not after an epoch
        self.batch_size, self.memory_limit_mb, self.output = int(batch_size), float(memory_limit_mb), output
        if isinstance(layers, str):
            layers = auto_layers(self.model, self.n_classes) if layers == "auto" else [layers]
        self.requested = list(layers)
        if not self.requested:
            raise SpecError("layers=[]: name at least one layer (usable.list_layers(model) lists them) or 'auto'")
        plugin("nc").resolve_layers(self.model, [n for n in self.requested if n != INPUT])  # unknown paths fail now
        self.pools = parse_pool(pool, self.requested)
        self._probe_obj = None
        if "dib" in self.metrics and decoder != "suffix":
            self._probe_obj = create("decoders", probe)
        self.rank, self.world = world()
        self.distributed = self.world > 1
        self.device = torch.device(device) if device is not None else next(
            (p.device for p in self.model.parameters()), torch.device("cpu"))
        self.data = {s: MeasureData(d, s, self.batch_size, batch, self.rank, self.world)
                     for s, d in (("train", train), ("test", test))}
        self.class_names = list(class_names) if class_names is not None else list(range(self.n_classes))
        if len(self.class_names) != self.n_classes:
            raise SpecError(f"{len(self.class_names)} class_names for n_classes={self.n_classes}")
        self.extra_attrs = dict(attrs or {})
        self.settings = {
            "layers": self.requested, "n_classes": self.n_classes, "metrics": list(self.metrics),
            "pool": self.pools, "every": self.every, "seed": self.seed, **self.nc_options,
            "model": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "train_size": self.data["train"].total, "test_size": self.data["test"].total}
        if "dib" in self.metrics:
            self.settings.update(decoder=decoder, probe=probe if decoder != "suffix" else "none", bn_mode=bn_mode,
                                 minimality=self.minimality, warm_start=self.warm_start,
                                 **{f"dib_{k}": v for k, v in self.dib_options.items()})
        self.writer = RunWriter(store, run, self.settings) if (store is not None and self.rank == 0) else None
        self.run_id = self.writer.run_id if self.writer is not None else run
        self._stored_epochs = ([] if self.writer is None or not self.writer.resumed else
                               [int(e) for e in self.writer.results.attrs(self.run_id).get("epochs_measured", [])])
        self._env = environment_attrs()
        self._start = now_iso()
        self._parts: dict[int, Any] = {}
        self._names: list[str] | None = None
        self._chain: Chain | None = None
        self._family = None
        self._warm = None

    # ------------------------------------------------------------------------------ public
    @property
    def resumed(self) -> bool:
        """Whether this tracker continues a run that was already in the store."""
        return self.writer is not None and self.writer.resumed

    @property
    def done_epochs(self) -> list[int]:
        """Epochs measured so far (stored ones included), ascending."""
        return sorted(set(self._stored_epochs) | set(self._parts))

    def epoch_end(self, epoch: int, force: bool = False):
        """Measure after ``epoch`` epochs of training when ``epoch % every == 0`` (or ``force``);
        returns that epoch's Dataset, or None when this epoch is not measured. On rank 0 with a
        store the run is rewritten with this epoch added."""
        epoch = int(epoch)
        if not force and epoch % self.every:
            return None
        with untouched(self.model):
            ds = self._measure(epoch)
        ds.attrs.update(self._attrs())
        ds.attrs.update(epochs_measured=[epoch], epochs_trained=epoch)
        if self.writer is not None:
            self.writer.write(ds, epoch, self._attrs())
        self._stored_epochs = [e for e in self._stored_epochs if e < epoch]
        self._parts = {e: p for e, p in self._parts.items() if e < epoch}
        self._parts[epoch] = ds
        if self.distributed and "dib" in self.metrics:
            import torch.distributed as dist
            dist.barrier()  # rank 0 fitted the decoders; leave together
        return ds

    @contextlib.contextmanager
    def epoch(self, epoch: int, force: bool = False):
        """``with tracker.epoch(e): train()`` measures after the block (not if it raised)."""
        yield self
        self.epoch_end(epoch, force=force)

    def dataset(self):
        """Every measured epoch as one Dataset (from the store where there is one)."""
        import xarray as xr
        stored = self.writer.stored() if self.writer is not None else None
        if stored is not None:
            return stored.copy()
        if not self._parts:
            raise DataError("no epoch has been measured yet; call tracker.epoch_end(epoch) after training an epoch")
        parts = [self._parts[e] for e in sorted(self._parts)]
        ds = xr.concat(parts, dim="epoch", data_vars="minimal", coords="minimal", compat="override",
                       combine_attrs="override") if len(parts) > 1 else parts[0].copy()
        ds.attrs.update(self._attrs())
        ds.attrs["epochs_measured"] = [int(e) for e in ds.epoch.values]
        ds.attrs["epochs_trained"] = int(ds.epoch.values.max())
        return ds

    def __repr__(self):
        return (f"Tracker({type(self.model).__name__}, layers={self._names or self.requested}, "
                f"metrics={list(self.metrics)}, run={self.run_id!r}, epochs={self.done_epochs})")

    # ------------------------------------------------------------------------------ measuring
    def _measure(self, epoch: int):
        folder = tempfile.mkdtemp(prefix="usable-tracker-")
        try:
            with torch.no_grad():
                caches = {s: collect(self.model, self.data[s], self.requested, self.n_classes, self.device,
                                     self.output, self.memory_limit_mb / 2, folder) for s in SPLITS}
            names = caches["train"].names
            if caches["test"].names != names:
                raise DataError(f"train and test expose different layers ({names} vs {caches['test'].names})")
            if self._names is None:
                self._setup(names, caches["train"])
            elif names != self._names:
                raise DataError(f"the model now exposes layers {names}, earlier {self._names}")
            nc = None
            if "nc" in self.metrics:
                nc = {s: nc_split(caches[s], self.pools, self.n_classes, self.device, self.batch_size,
                                  self.nc_options, self.distributed) for s in SPLITS}
            la = [loss_accuracy(caches[s], self.distributed) for s in SPLITS]
            dib = self._dib(caches) if "dib" in self.metrics else None
            return epoch_dataset(epoch, names, self._index, self._coords, nc, dib,
                                 dib is not None, [a for a, _ in la], [b for _, b in la], self.class_names)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _setup(self, names: list[str], cache) -> None:
        """Layer indices, pooling and the DIB decoder family, fixed at the first measurement."""
        self._names = names
        first = 0 if INPUT in names else 1
        self._index = list(range(first, first + len(names)))
        pools = {n: self.pools.get(n, "full") for n in names}
        self.pools = pools

        def dim(n):
            shape = cache.shapes[n]
            return int(np.prod(shape)) if pools[n] == "full" or len(shape) < 2 else int(shape[0])
        self._coords = {"layer_pool": [pools[n] for n in names], "layer_dim": [dim(n) for n in names],
                        "layer_shape": ["×".join(map(str, cache.shapes[n])) for n in names]}
        self._classifier_layer = cache.classifier_layer
        if "dib" not in self.metrics:
            return
        reason = "decoder='probe' was asked for"
        if self.decoder in ("auto", "suffix"):
            clf = classifier_of(self.model, self.n_classes)
            found = find_chain(self.model, names, clf[0] if clf else None, cache.example)
            if isinstance(found, Chain):
                self._chain = found
            else:
                reason = found
                if self.decoder == "suffix":
                    raise SpecError(f"decoder='suffix' needs the layers to cut a chain of blocks, but {found}; use "
                                    f"decoder='probe' (probe={self.probe!r}) or layers that are children of one module")
        if self._chain is not None:
            self._family = self._chain.describe()
            self._coords["layer_decoder"] = [f"suffix from block {self._chain.cut[n]}" for n in names]
        else:
            self._family = (f"probe: {self.probe} on each layer's features as pooled (a declared family, the same "
                            f"for every layer; the model's own suffix was not used: {reason})")
            self._coords["layer_decoder"] = [f"probe {self.probe}" for _ in names]

    def _dib(self, caches):
        """Sufficiency and minimality on rank 0 (features of every process gathered there)."""
        suffix = self._chain is not None
        keys = [self._chain.cut[n] for n in self._names] if suffix else list(self._index)
        feats, ys = {}, {}
        for s in SPLITS:
            c = caches[s]
            f = {k: (c.feats[n] if suffix else pool_features(c.feats[n], self.pools[n])).float()
                 for k, n in zip(keys, self._names)}
            y = c.y
            if self.distributed:
                inter = self.data[s].sharded
                f = {k: gather_rows(v, inter) for k, v in f.items()}
                y = gather_rows(y, inter)
            feats[s], ys[s] = f, y
        if self.rank != 0:
            return None
        dib = plugin("dib")
        cfg = dib.decoder_config(device=str(self.device), **self.dib_options)
        self._dec_cfg = cfg
        if suffix:
            decoders = {k: Float32(dib.SuffixDecoder(self._chain.network, k, self.bn_mode)) for k in keys}
        else:
            decoders = {k: self._probe_obj for k in keys}  # registry decoders build float32 networks
        with torch.enable_grad():
            res = dib.measure(self._chain.network if suffix else None, feats, ys, self.n_classes, config=cfg,
                              seed=self.seed, bn_mode=self.bn_mode, minimality=self.minimality,
                              warm=self._warm if self.warm_start else None, decoders=decoders)
        self._warm = res.models
        return _reorder(res, [sorted(keys).index(k) for k in keys])

    # ------------------------------------------------------------------------------ provenance
    def _attrs(self) -> dict[str, Any]:
        d = self.data
        headline = (["nc1"] if "nc" in self.metrics else []) + \
            (["sufficiency", "minimality"] if "dib" in self.metrics else []) + ["accuracy"]
        a = {"metric": "track", "kind": "tracker",
             "sources": [f"train: {d['train'].describe}", f"test: {d['test'].describe}"],
             "decoder": self.settings["model"], "divergence": "none", "schedule": "none", "betas": [0.0],
             "seeds": [self.seed], "fit": "{}", "tracker_settings": json.dumps(self.settings, sort_keys=True, default=str),
             "n_classes": self.n_classes, "train_size": d["train"].total or -1, "test_size": d["test"].total or -1,
             "layers": list(self._names or self.requested),
             "layer_meaning": ("layer l = the l-th measured layer in the order its output appears in the forward "
                               "pass (0 = the input); layer_name = its module path"),
             "pool": json.dumps(self.pools), "pool_meaning": json.dumps({k: POOLS[k] for k in set(self.pools.values())}),
             "measurement": MEASUREMENT, "measure_every": self.every, "metrics": list(self.metrics),
             "world_size": self.world,
             "merge": ("torch.distributed: NC states summed over processes with usable_nc.all_reduce_states after each "
                       "pass; DIB features gathered to rank 0, which fits the decoders and writes") if self.distributed
             else "single process",
             "classifier_layer": str(getattr(self, "_classifier_layer", None) or "none"),
             "headline": headline, **self._env, "start_time": self._start, "end_time": now_iso()}
        if "nc" in self.metrics:
            a.update({"weighting": self.nc_options["weighting"], "rank_tol": self.nc_options["rank_tol"],
                      "nc_method": self.nc_options["method"],
                      "batch_norm_mode": "eval (running statistics, not updated) for every measurement pass"})
        if "dib" in self.metrics:
            a.update({"dib_decoder": self._family or "not yet chosen", "bn_mode": self.bn_mode,
                      "fit_and_evaluation": FIT_AND_EVAL,
                      "relabelling": "thesis algorithm 2: within-class index in base C (dataset order), least "
                                     "significant digit first; N_D = smallest k with C^k >= largest class"})
            if getattr(self, "_dec_cfg", None) is not None:
                a["decoder_fit"] = json.dumps(self._dec_cfg.to_attrs())
            if self._chain is not None:
                a["blocks"] = list(self._chain.network.layer_names)
        a.update(self.extra_attrs)
        return a
