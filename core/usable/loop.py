"""The one training loop. Every estimator that learns decoders calls ``fit``.

Per step, for each ensemble member e (a (dataset, seed, β) triple):

    loss_e = (1/n) Σ_i CE(f_i^e(x_i), y) + β_e · s(t) · D(f_1^e(x_1), …, f_n^e(x_n))

and the optimiser minimises Σ_e loss_e. Members share no parameters and every optimiser used
here is element-wise, so the sum trains each member exactly as if it were alone; each member
also draws its own mini-batches from its own seed. One call therefore replaces many fits.

``fit`` is a short orchestrator over named pieces: the member layout (``Members``), the data on
the device with each member's batch order (``TrainData``), the objective (``Objective``), one
epoch (``train_epoch``) and evaluation (``evaluate``). Callbacks extend it: any object with
``on_batch_end(state)`` and/or ``on_epoch_end(state)`` (return ``"stop"`` to end training) is
called with the live ``LoopState`` (models, epoch, step, the batch's outputs and targets).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from .data import SourceData
from .ensemble import make_ensemble, member_seed
from .errors import DataError, SpecError
from .info import LOG2E
from .progressbar import progress
from .result import FitResult, Members
from .runspec import DIVERGENCE_FORMS, FitConfig
from .threads import choose_threads, step_macs

HEAD_REDUCTIONS = ("mean", "sum")
# Sources up to this size (all members together) are re-ordered once per epoch (see TrainData).
_PREGATHER_BYTES = 256 * 2**20


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SpecError(f"device {device!r} requested but CUDA is not available; use --device cpu or auto")
    return torch.device(device)


def combine_divergence(div_fn: Callable, preds: Sequence[torch.Tensor], form: str) -> torch.Tensor:
    """D(f_1..f_n) per sample from a pairwise divergence: ``pairwise`` mean over the n(n-1)/2
    pairs (exact, O(n²)) or ``consensus`` mean divergence of each prediction to their mean (O(n))."""
    if form not in DIVERGENCE_FORMS:
        raise SpecError(f"divergence form {form!r}; choose one of {', '.join(DIVERGENCE_FORMS)}")
    if len(preds) < 2:
        return torch.zeros(preds[0].shape[:-1], device=preds[0].device)
    if form == "pairwise":
        if len(preds) == 2:
            return div_fn(preds[0], preds[1])
        terms = [div_fn(a, b) for a, b in itertools.combinations(preds, 2)]
    else:
        centre = torch.stack(list(preds)).mean(dim=0)
        terms = [div_fn(p, centre) for p in preds]
    return torch.stack(terms).mean(dim=0)


def log_softmax(out: torch.Tensor) -> torch.Tensor:
    """log-softmax over the last dim. With fewer classes than a vector register holds (8 floats),
    torch's CPU kernel walks each row of K scalars: over the samples axis it runs 3-6× faster
    (measured on (30, 2000, 2..4), bit-identical values); from K = 8 on the rows are faster."""
    if out.shape[-1] < 8 and out.device.type == "cpu" and out.ndim >= 2:
        return torch.log_softmax(out.transpose(-1, -2), dim=-2).transpose(-1, -2)
    return torch.log_softmax(out, dim=-1)


@dataclass
class Objective:
    """What every V-information fit minimises: each decoder's cross-entropy plus β·D between
    their predictions; owns the learned σ of Gaussian decoders. ``head_reduction``: several target
    heads are averaged (``mean``) or summed (``sum``: each head counts in full, as independent
    problems do). Another objective (a critic's bound, say) implements the same four methods:
    ``setup``, ``parameters``, ``step`` (training) and ``held_out`` (evaluation in bits)."""

    target: str
    n_classes: int
    heads: int | None
    n_sources: int
    divergence: Callable | None = None
    form: str = "pairwise"
    head_reduction: str = "mean"
    log_sigma: nn.Parameter | None = None

    def __post_init__(self):
        if self.head_reduction not in HEAD_REDUCTIONS:
            raise SpecError(f"head_reduction {self.head_reduction!r}; choose one of {', '.join(HEAD_REDUCTIONS)}")

    def setup(self, n_members: int, device: torch.device) -> None:
        if self.target == "real" and self.log_sigma is None:
            self.log_sigma = nn.Parameter(torch.zeros(n_members, self.n_sources, device=device))

    def parameters(self) -> list[torch.Tensor]:
        return [self.log_sigma] if self.log_sigma is not None else []

    def log_likelihood(self, out: torch.Tensor, y: torch.Tensor, i: int, want_pred: bool, train: bool = True):
        """log f(y|x) in nats per sample (out (E, B, n_out), y (E, B[, H]) -> (E, B[, H])) and, if
        asked, what the divergence compares: class probabilities as exp(log-softmax), reusing it
        instead of a second softmax, or the predicted means."""
        if self.target == "real":
            ls = self.log_sigma[:, i] if train else self.log_sigma[:, i].detach()
            ll = -0.5 * math.log(2 * math.pi) - ls.view(-1, 1) - 0.5 * ((y - out[..., 0]) * torch.exp(-ls.view(-1, 1))) ** 2
            return ll, (out if want_pred else None)
        if self.heads:
            out = out.reshape(*out.shape[:-1], self.heads, self.n_classes)
        logp = log_softmax(out)
        ll = torch.gather(logp, -1, y.unsqueeze(-1)).squeeze(-1)
        return ll, (logp.exp() if want_pred else None)

    def reduce(self, per_sample: torch.Tensor, E: int) -> torch.Tensor:
        """(E, B[, H]) -> (E,): mean over samples, heads averaged or summed."""
        if self.head_reduction == "sum" and per_sample.ndim == 3:
            per_sample = per_sample.sum(dim=-1)
        return per_sample.reshape(E, -1).mean(dim=1)

    def step(self, outs: list[torch.Tensor], y: torch.Tensor, beta: torch.Tensor, want_div: bool):
        """Training loss per member (E,), its divergence (E,) and cross-entropies (n, E)."""
        E = y.shape[0]
        lls, preds = zip(*(self.log_likelihood(o, y, i, want_div) for i, o in enumerate(outs)))
        ce = torch.stack([self.reduce(-ll, E) for ll in lls])
        loss = ce.mean(dim=0)
        div = torch.zeros(E, device=y.device)
        if want_div:
            div = self.reduce(combine_divergence(self.divergence, preds, self.form), E)
            loss = loss + beta * div
        return loss, div, ce

    def held_out(self, outs: list[torch.Tensor], y: torch.Tensor, with_divergence: bool):
        """Per-sample log2 f(y|x) (E, n, N[, H]) and, if asked, the mean divergence (E[, H])."""
        want_div = with_divergence and self.divergence is not None and len(outs) > 1
        lls, preds = zip(*(self.log_likelihood(o, y, i, want_div, train=False) for i, o in enumerate(outs)))
        logp = torch.stack([ll * LOG2E for ll in lls], dim=1).cpu()
        if not want_div:
            return logp, None
        return logp, combine_divergence(self.divergence, preds, self.form).mean(dim=1).cpu()  # (E, N[, H]) -> mean


def _flatten_params(params: Sequence[torch.Tensor]) -> nn.Parameter | None:
    """Make every trainable tensor a view into one flat parameter, and its gradient a view into one
    flat gradient, so the optimiser runs a handful of kernels per step instead of a few per tensor
    (with ~30 small tensors that per-tensor loop was a large share of a step on CPU). Every
    optimiser here is element-wise, so the numbers are the same. Returns None (use the tensors as
    they are) when they do not share one dtype and device."""
    uniq = list({id(p): p for p in params if p.requires_grad}.values())
    if not uniq or len({(p.dtype, p.device) for p in uniq}) != 1 or any(p.is_sparse for p in uniq):
        return None
    data = torch.empty(sum(p.numel() for p in uniq), dtype=uniq[0].dtype, device=uniq[0].device)
    grad = torch.zeros_like(data)
    offset = 0
    for p in uniq:
        k = p.numel()
        data[offset:offset + k].copy_(p.detach().reshape(-1))
        p.data = data[offset:offset + k].view(p.shape)
        p.grad = grad[offset:offset + k].view(p.shape)  # autograd accumulates in place into it
        offset += k
    flat = nn.Parameter(data)
    flat.grad = grad
    return flat


class Optimiser:
    """SGD (momentum, weight decay), Adam and AdamW over one flat parameter (or the tensors as they
    are), with the exponential lr decay: torch.optim's single-tensor arithmetic, step for step
    (tests/test_optimiser.py compares them bit for bit), without torch.optim, whose first optimiser
    imports torch._dynamo: 2.3 s of every process's start-up (measured)."""

    BETAS, EPS = (0.9, 0.999), 1e-8

    def __init__(self, params: list[torch.Tensor], cfg: FitConfig):
        self.flat = _flatten_params(params)
        self.params = [self.flat] if self.flat is not None else list({id(p): p for p in params if p.requires_grad}.values())
        self.cfg, self.lr, self.t = cfg, cfg.lr, 0
        self.state: list[dict[str, torch.Tensor]] = [{} for _ in self.params]

    def decay(self) -> None:
        self.lr = self.lr * self.cfg.lr_decay

    def step(self, loss: torch.Tensor) -> None:
        for p in self.params:
            if p.grad is not None:
                p.grad.zero_()
        loss.backward()
        self.update()

    @torch.no_grad()
    def update(self) -> None:
        cfg, lr = self.cfg, self.lr
        self.t += 1
        for p, st in zip(self.params, self.state):
            g = p.grad
            if g is None:
                continue
            if cfg.optimizer == "sgd":
                if cfg.weight_decay:
                    g = g.add(p, alpha=cfg.weight_decay)
                if cfg.momentum:
                    if "buf" not in st:
                        st["buf"] = torch.clone(g).detach()
                    else:
                        st["buf"].mul_(cfg.momentum).add_(g)
                    g = st["buf"]
                p.add_(g, alpha=-lr)
                continue
            (b1, b2), step = self.BETAS, float(self.t)
            if cfg.optimizer == "adamw":
                p.mul_(1 - lr * cfg.weight_decay)
            elif cfg.weight_decay:
                g = g.add(p, alpha=cfg.weight_decay)
            m, v = st.setdefault("m", torch.zeros_like(p)), st.setdefault("v", torch.zeros_like(p))
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / (1 - b2 ** step) ** 0.5).add_(self.EPS)
            p.addcdiv_(m, denom, value=-(lr / (1 - b1 ** step)))


class TrainData:
    """The training split of every dataset on the device, and each member's batch order.

    Several datasets are stacked on a leading axis and member e reads its own (``dataset_index``).
    Small sources are gathered into each epoch's order once, so a step takes a slice (a view)
    instead of an index gather per source; big ones (images) are gathered batch by batch."""

    def __init__(self, datas: list[SourceData], members: Members, batch_size: int, device: torch.device):
        self.G, self.device = len(datas), device
        self.dataset_index = None if self.G == 1 else torch.tensor(members.column("dataset"), device=device)[:, None]
        self.y = self.stacked([d.train.y for d in datas]).to(device)
        self.xs = [self.stacked([d.train.xs[i] for d in datas]).to(device) for i in range(datas[0].n_sources)]
        self.N = len(datas[0].train)
        self.B = min(batch_size, self.N)
        self.steps = math.ceil(self.N / self.B)
        self.gens = [torch.Generator().manual_seed(member_seed(s, 10_007)) for s in members.column("seed")]
        E = members.size
        self.pre = [E * (x.numel() // self.G) * x.element_size() <= _PREGATHER_BYTES for x in self.xs]

    def stacked(self, tensors):
        return tensors[0] if self.G == 1 else torch.stack(list(tensors))

    def take(self, x, idx):  # rows ``idx`` (E, b) of each member's own dataset
        return x[idx] if self.G == 1 else x[self.dataset_index, idx]

    def order(self) -> torch.Tensor:
        """Each member's sample order for the next epoch, (E, N), drawn from its own generator."""
        return torch.stack([torch.randperm(self.N, generator=g) for g in self.gens]).to(self.device)

    def epoch(self, perms: torch.Tensor):
        """Batches (inputs per source, targets (E, b)) of one epoch in each member's own order."""
        y_ep = self.take(self.y, perms)
        xs_ep = [self.take(x, perms) if p else None for x, p in zip(self.xs, self.pre)]
        for step in range(self.steps):
            sl = slice(step * self.B, (step + 1) * self.B)
            yield step, [xe[:, sl] if xe is not None else self.take(x, perms[:, sl])
                         for x, xe in zip(self.xs, xs_ep)], y_ep[:, sl]


@dataclass
class LoopState:
    """What callbacks see. During a step: ``outputs`` (one (E, B, n_out) tensor per source),
    ``targets`` (E, B[, H]) and ``loss`` (E,); after an epoch: ``epoch_loss`` (E,)."""

    models: list[nn.Module]
    members: Members
    objective: Objective
    device: torch.device
    epoch: int = 0
    step: int = 0
    outputs: list[torch.Tensor] | None = None
    targets: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    epoch_loss: np.ndarray | None = None


def train_epoch(state: LoopState, data: TrainData, opt: Optimiser, beta: torch.Tensor, factor: Callable,
                cfg: FitConfig, want_div: bool, batch_callbacks: list) -> torch.Tensor:
    """One epoch over every member's own batches; returns (3 + n, E): loss, div, β, CE_i.

    A decoder family whose ensemble class offers ``fused_epoch(models, data, objective, opt, beta,
    factors, cfg, want_div, perms)`` may run the whole epoch natively (the MLP family does, in a
    compiled kernel); it returns None for anything it does not cover. Otherwise per-step records
    stay on the device and are summed once per epoch (no per-step host sync)."""
    for m in state.models:
        m.train()
    perms = data.order()
    factors = [float(factor(state.epoch + (s / data.steps if cfg.schedule_per_step else 0.0), cfg.epochs))
               for s in range(data.steps)]
    fused = getattr(type(state.models[0]), "fused_epoch", None)
    if fused is not None and not batch_callbacks:
        sums = fused(state.models, data, state.objective, opt, beta, factors, cfg, want_div, perms)
        if sums is not None:
            return sums
    records, weights = [], []
    for step, xs, yb in data.epoch(perms):
        beta_t = beta * factors[step]
        outs = [m(x) for m, x in zip(state.models, xs)]
        loss, div, ce = state.objective.step(outs, yb, beta_t, want_div)
        opt.step(loss.sum())
        records.append(torch.cat([loss.detach(), div.detach(), beta_t, ce.detach().reshape(-1)]))
        weights.append(yb.shape[1] / data.N)
        if batch_callbacks:
            state.step, state.outputs, state.targets, state.loss = step, outs, yb, loss.detach()
            for cb in batch_callbacks:
                cb.on_batch_end(state)
    state.outputs = state.targets = None
    sums = (torch.stack(records).double().cpu() * torch.tensor(weights, dtype=torch.float64)[:, None]).sum(dim=0)
    return sums.reshape(3 + len(state.models), -1)


@torch.no_grad()
def predict(models: Sequence[nn.Module], xs: Sequence[torch.Tensor], n_members: int,
            batch_size: int = 4096, device: torch.device | None = None,
            member_data: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Outputs of every member on a whole split, in eval mode: a list over sources of (E, N, n_out).

    With ``member_data`` (E,), each x is (G, N, ...) holding G datasets and member e sees dataset
    ``member_data[e]``; otherwise every member sees the same x (N, ...). A family whose ensemble
    class offers ``fused_predict(models, xs, n_members, member_data, device)`` may answer natively
    (None: not covered)."""
    fused = getattr(type(models[0]), "fused_predict", None)
    if fused is not None:
        outs = fused(models, xs, n_members, member_data, device)
        if outs is not None:
            return outs
    outs = []
    for model, x in zip(models, xs):
        was_training = model.training
        model.eval()
        chunks = []
        for start in range(0, x.shape[1] if member_data is not None else x.shape[0], batch_size):
            if member_data is not None:
                xb = x[:, start:start + batch_size]
                xb = xb.to(device)[member_data.to(device)] if device is not None else xb[member_data]
            else:
                xb = x[start:start + batch_size]
                xb = (xb.to(device) if device is not None else xb).unsqueeze(0).expand(n_members, *xb.shape)
            chunks.append(model(xb).float())
        outs.append(torch.cat(chunks, dim=1))
        model.train(was_training)
    return outs


def evaluate(models, xs, y, objective: Objective, n_members: int, batch_size: int = 4096,
             device: torch.device | None = None, member_data: torch.Tensor | None = None,
             with_divergence: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The objective's held-out values on a whole split: per-sample log2 f(y|x) (E, n, N[, H]) and,
    if asked, the per-member mean divergence (E[, H]). ``member_data``: as in ``predict``."""
    device = device or torch.device("cpu")
    outs = predict(models, xs, n_members, batch_size, device, member_data)
    yd = y.to(device)[member_data.to(device)] if member_data is not None else \
        y.to(device).unsqueeze(0).expand(n_members, *y.shape)
    return objective.held_out(outs, yd, with_divergence)


def same_structure(datas: Sequence[SourceData]) -> None:
    """Datasets trained as one ensemble must agree in everything but their values."""
    def shape(d):
        return (d.n_sources, [d.in_shape(i) for i in range(d.n_sources)], len(d.train), len(d.test),
                d.target, d.n_classes, tuple(d.train.y.shape[1:]))
    for k, d in enumerate(datas[1:], start=2):
        if shape(d) != shape(datas[0]):
            raise DataError(
                f"dataset {k} cannot train in one ensemble with dataset 1: (sources, input shapes, train size, "
                f"test size, target, classes, target shape) differ: {shape(d)} vs {shape(datas[0])}. Fit them "
                "separately, or pad them to one shape (e.g. usable.with_classes).")


def check_finite(datas: Sequence[SourceData]) -> None:
    for d in datas:
        for split in ("train", "test"):
            sp = getattr(d, split)
            for name, x in zip(d.names, sp.xs + ([sp.y] if d.target == "real" else [])):
                if x.is_floating_point() and not bool(torch.isfinite(x).all()):
                    raise DataError(f"source {name!r} ({split} split) holds NaN or infinite values; clean or "
                                    "impute them before fitting (a decoder cannot learn from them).")


def fit(data: SourceData | Sequence[SourceData], decoders, *, divergence: Callable | None = None,
        schedule: Callable[[float, int], float] | None = None, betas: Sequence[float] = (0.0,),
        seeds: Sequence[int] = (0,), config: FitConfig | None = None, callbacks: Sequence[Any] = (),
        models: Sequence[nn.Module] | None = None, objective: Objective | None = None,
        head_reduction: str = "mean", dataset_names: Sequence[Any] | None = None, desc: str = "fit") -> FitResult:
    """Train one decoder per source of ``data`` for every (seed, β) member, jointly.

    ``data`` may also be a list of G datasets of one shape (e.g. several tasks or data seeds):
    then members are (dataset, seed, β) triples, each training on its own dataset, still as one
    batched model. ``decoders``: one decoder plugin object for all sources, or a list (one per source).
    ``divergence``: per-sample pairwise divergence d(p, q) -> (...,), needed when any β > 0.
    ``schedule``: factor(t, epochs) in [0, 1] multiplying β (t = epoch index, fractional per step).
    ``models``: prebuilt ensembles (one per source) to continue training instead of building.
    ``callbacks``: objects with ``on_batch_end(state)`` / ``on_epoch_end(state)`` (see module doc).
    ``objective``: what to minimise, if not the decoders' cross-entropy + β·D (see ``Objective``).
    """
    cfg = config or FitConfig()
    datas = list(data) if isinstance(data, (list, tuple)) else [data]
    first = datas[0]
    if len(datas) > 1:
        same_structure(datas)
    check_finite(datas)
    members = Members(len(datas), tuple(int(s) for s in seeds), tuple(float(b) for b in betas))
    n, E = first.n_sources, members.size
    if n == 0:
        raise DataError("fit needs at least one source")
    if any(b != 0 for b in members.betas) and n > 1 and divergence is None:
        raise SpecError("β > 0 with several sources needs a divergence (e.g. --divergence l1)")
    decoders = list(decoders) if isinstance(decoders, (list, tuple)) else [decoders] * n
    if len(decoders) != n:
        raise SpecError(f"{len(decoders)} decoders given for {n} sources")
    device = resolve_device(cfg.device)
    heads = first.train.y.shape[1] if (first.target == "classes" and first.train.y.ndim == 2) else None
    K = first.n_classes or 0
    objective = objective or Objective(first.target, K, heads, n, divergence, cfg.divergence_form, head_reduction)
    objective.setup(E, device)
    n_out = (heads or 1) * K if first.target == "classes" else 1
    if models is None:
        vmap = cfg.ensemble == "vmap" or (cfg.ensemble == "auto" and device.type == "cuda")
        models = [make_ensemble(dec, first.in_shape(i), n_out, members.column("seed"), salt=i, vmap=vmap).to(device)
                  for i, dec in enumerate(decoders)]
    models = list(models)
    params = [p for m in models for p in m.parameters()] + objective.parameters()
    opt = Optimiser(params, cfg)
    train = TrainData(datas, members, cfg.batch_size, device)
    member_data = None if len(datas) == 1 else torch.tensor(members.column("dataset"))
    test_xs = [train.stacked([d.test.xs[i] for d in datas]) for i in range(n)]
    test_y = train.stacked([d.test.y for d in datas])
    beta = torch.tensor(members.column("beta"), dtype=torch.float32, device=device)
    factor = schedule or (lambda t, epochs: 1.0)
    # The divergence enters training only where some β > 0; with β = 0 everywhere it is only
    # measured on the held-out split at the end.
    want_div = divergence is not None and n > 1 and any(b != 0 for b in members.betas)
    state = LoopState(models, members, objective, device)
    batch_cbs = [cb for cb in callbacks if hasattr(cb, "on_batch_end")]
    epoch_cbs = [cb for cb in callbacks if hasattr(cb, "on_epoch_end")]

    def held_out(with_divergence=False):
        return evaluate(models, test_xs, test_y, objective, E, cfg.eval_batch_size, device, member_data, with_divergence)

    samples = [x[0] if train.G == 1 else x[0, 0] for x in train.xs]  # one input per source
    threads_before = torch.get_num_threads()
    torch.set_num_threads(int(cfg.threads) if cfg.threads else
                          choose_threads(step_macs(models, samples, E, train.B), device, threads_before))
    try:
        hist = {k: [] for k in ("train_loss", "train_ce", "train_divergence", "beta", "test_ce")}
        bar = progress(range(cfg.epochs), desc=desc, enabled=cfg.progress)
        for epoch in bar:
            state.epoch = epoch
            sums = train_epoch(state, train, opt, beta, factor, cfg, want_div, batch_cbs)
            if not bool(torch.isfinite(sums[0]).all()):
                raise DataError(f"training diverged in epoch {epoch + 1}: the loss is NaN or infinite. Lower the "
                                f"learning rate (--lr {cfg.lr:g}) or β, or check the inputs' scale.")
            opt.decay()
            for key, row in zip(("train_loss", "train_divergence", "beta"), sums[:3]):
                hist[key].append(row.numpy())
            hist["train_ce"].append((sums[3:].T * LOG2E).numpy())
            if cfg.eval_every and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs - 1):
                hist["test_ce"].append((-held_out()[0].double().reshape(E, n, -1).mean(dim=2)).numpy())
            else:
                hist["test_ce"].append(np.full((E, n), np.nan))
            bar.set_postfix(loss=f"{float(sums[0].mean()):.4f}")
            state.epoch_loss = sums[0].numpy()
            stop = any(cb.on_epoch_end(state) == "stop" for cb in epoch_cbs)
            if stop or (cfg.stop_loss is not None and float(sums[0].max()) <= cfg.stop_loss):
                break
        bar.close()
        test_logp, test_div = held_out(with_divergence=True)
        if test_div is None:
            test_div = torch.zeros(E, *test_logp.shape[3:])
    finally:
        torch.set_num_threads(threads_before)
    return FitResult(members, list(first.names), test_logp, test_div.double().numpy(),
                     {k: np.stack(v) for k, v in hist.items()}, models,
                     None if getattr(objective, "log_sigma", None) is None else objective.log_sigma.detach().cpu(),
                     len(hist["train_loss"]), dataset_names)
