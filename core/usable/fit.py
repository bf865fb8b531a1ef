"""The one training loop. Every estimator that learns decoders calls ``fit``.

Per step, for each ensemble member e (a (seed, β) pair):

    loss_e = (1/n) Σ_i CE(f_i^e(x_i), y) + β_e · s(t) · D(f_1^e(x_1), …, f_n^e(x_n))

and the optimiser minimises Σ_e loss_e. Members share no parameters and every optimiser used
here is element-wise, so the sum trains each member exactly as if it were alone; each member
also draws its own mini-batches from its own seed. One call therefore replaces many fits.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .data import SourceData
from .ensemble import make_ensemble, member_seed
from .info import LOG2E

DIVERGENCE_FORMS = ("pairwise", "consensus")


@dataclass
class FitConfig:
    """Optimiser and loop settings (stored in every result's attrs)."""

    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "sgd"          # sgd | adam | adamw
    lr: float = 0.01
    lr_decay: float = 0.97          # multiplicative per epoch (ExponentialLR)
    momentum: float = 0.9
    weight_decay: float = 0.005
    schedule_per_step: bool = False  # β-schedule evaluated per epoch (default) or per step
    divergence_form: str = "pairwise"
    device: str = "auto"
    threads: int | None = None      # torch intra-op threads; None leaves torch's choice
    eval_batch_size: int = 4096
    eval_every: int = 1             # test cross-entropy curve every k epochs (0 = only at the end)
    stop_loss: float | None = None  # stop once every member's epoch training loss is <= this
    progress: bool = True

    def to_attrs(self) -> dict[str, Any]:
        return {k: ("none" if v is None else v) for k, v in asdict(self).items()}


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available; use --device cpu or auto")
    return torch.device(device)


@dataclass
class FitResult:
    """What ``fit`` returns. Member e = (dataset index × len(seeds) + seed index) × len(betas) + β index
    (one dataset unless ``fit`` was given a list of them).

    ``test_logp``: per-sample log2 f(y|x) of the true target on the test split, (E, n, N[, H]).
    ``test_divergence``: held-out divergence (unweighted by β), (E,).
    ``history``: per-epoch arrays (epoch, E[, n]): train_loss, train_ce (bits), train_divergence,
    beta (the β in force), test_ce (bits; NaN on epochs not evaluated).
    """

    seeds: list[int]
    betas: list[float]
    names: list[str]
    test_logp: torch.Tensor
    test_divergence: np.ndarray
    history: dict[str, np.ndarray]
    models: list[nn.Module]
    log_sigma: torch.Tensor | None = None
    epochs_run: int = 0
    n_datasets: int = 1

    @property
    def test_ce(self) -> np.ndarray:
        """Held-out cross-entropy in bits, (E, n[, H])."""
        return (-self.test_logp.double().mean(dim=2)).numpy()

    def by_seed_beta(self, array: np.ndarray) -> np.ndarray:
        """Reshape a leading member axis E into (seed, beta), or (dataset, seed, beta) when the fit
        was given several datasets."""
        a = np.asarray(array)
        lead = (self.n_datasets,) if self.n_datasets > 1 else ()
        return a.reshape(*lead, len(self.seeds), len(self.betas), *a.shape[1:])


def _log_lik_and_pred(out: torch.Tensor, y: torch.Tensor, target: str, heads: int | None,
                      n_classes: int, log_sigma: torch.Tensor | None, want_pred: bool):
    """log f(y|x) in nats per sample (out (E, B, n_out), y (E, B[, H]) -> (E, B[, H])) plus, if
    asked, what the divergence compares: class probabilities as exp(log-softmax), reusing it
    instead of a second softmax, or the predicted means."""
    if target == "real":
        mu = out[..., 0]
        ls = log_sigma.view(-1, 1)
        ll = -0.5 * math.log(2 * math.pi) - ls - 0.5 * ((y - mu) * torch.exp(-ls)) ** 2
        return ll, (out if want_pred else None)
    if heads:
        out = out.reshape(*out.shape[:-1], heads, n_classes)
    logp = torch.log_softmax(out, dim=-1)
    ll = torch.gather(logp, -1, y.unsqueeze(-1)).squeeze(-1)
    return ll, (logp.exp() if want_pred else None)


# Sources up to this size (all members together) are re-ordered once per epoch (see ``fit``).
_PREGATHER_BYTES = 256 * 2**20


def _flatten_params(params: Sequence[torch.Tensor]) -> nn.Parameter | None:
    """Make every trainable tensor a view into one flat parameter, and its gradient a view into one
    flat gradient, so the optimiser runs a handful of kernels per step instead of a few per tensor
    (with ~30 small tensors that per-tensor loop was a large share of a step on CPU). Every
    optimiser here is element-wise, so the numbers are the same. Returns None (use the tensors as
    they are) when they do not share one dtype and device."""
    uniq = list({id(p): p for p in params if p.requires_grad}.values())
    if not uniq or len({(p.dtype, p.device) for p in uniq}) != 1 or any(p.is_sparse for p in uniq):
        return None
    total = sum(p.numel() for p in uniq)
    data = torch.empty(total, dtype=uniq[0].dtype, device=uniq[0].device)
    grad = torch.zeros_like(data)
    offset = 0
    for p in uniq:
        k = p.numel()
        data[offset:offset + k].copy_(p.detach().reshape(-1))
        p.data = data[offset:offset + k].view(p.shape)
        # autograd accumulates in place into an existing .grad, i.e. into the flat gradient
        p.grad = grad[offset:offset + k].view(p.shape)
        offset += k
    flat = nn.Parameter(data)
    flat.grad = grad
    return flat


def combine_divergence(div_fn: Callable, preds: Sequence[torch.Tensor], form: str) -> torch.Tensor:
    """D(f_1..f_n) per sample from a pairwise divergence: ``pairwise`` mean over the n(n-1)/2
    pairs (exact, O(n²)) or ``consensus`` mean divergence of each prediction to their mean (O(n))."""
    if form not in DIVERGENCE_FORMS:
        raise ValueError(f"divergence form {form!r}; choose one of {', '.join(DIVERGENCE_FORMS)}")
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


def _make_optimizer(params, cfg: FitConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer {cfg.optimizer!r}; choose sgd, adam or adamw")


@torch.no_grad()
def predict(models: Sequence[nn.Module], xs: Sequence[torch.Tensor], n_members: int,
            batch_size: int = 4096, device: torch.device | None = None,
            member_data: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Outputs of every member on a whole split, in eval mode: a list over sources of (E, N, n_out).

    With ``member_data`` (E,), each x is (G, N, ...) holding G datasets and member e sees dataset
    ``member_data[e]``; otherwise every member sees the same x (N, ...).
    """
    outs = []
    for model, x in zip(models, xs):
        was_training = model.training
        model.eval()
        chunks = []
        n_samples = x.shape[1] if member_data is not None else x.shape[0]
        for start in range(0, n_samples, batch_size):
            if member_data is not None:
                xb = x[:, start:start + batch_size]
                xb = xb.to(device)[member_data.to(device)] if device is not None else xb[member_data]
            else:
                xb = x[start:start + batch_size]
                if device is not None:
                    xb = xb.to(device)
                xb = xb.unsqueeze(0).expand(n_members, *xb.shape)
            chunks.append(model(xb).float())
        outs.append(torch.cat(chunks, dim=1))
        model.train(was_training)
    return outs


def evaluate(models, xs, y, *, target: str, n_classes: int | None, n_members: int, div_fn=None,
             form: str = "pairwise", log_sigma=None, batch_size: int = 4096,
             device: torch.device | None = None,
             member_data: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-sample log2 f(y|x) (E, n, N[, H]) and the per-member mean divergence (E,) on a split.
    ``member_data``: as in ``predict`` (then y is (G, N[, H]) too)."""
    device = device or torch.device("cpu")
    outs = predict(models, xs, n_members, batch_size, device, member_data)
    if member_data is not None:
        yd = y.to(device)[member_data.to(device)]
        y = y[0]
    else:
        yd = y.to(device).unsqueeze(0).expand(n_members, *y.shape)
    heads = y.shape[1] if (target == "classes" and y.ndim == 2) else None
    want_div = div_fn is not None and len(outs) > 1
    logps, preds = [], []
    for i, out in enumerate(outs):
        ls = None if log_sigma is None else log_sigma[:, i].detach()  # evaluation: no graph
        ll, pred = _log_lik_and_pred(out, yd, target, heads, n_classes or 0, ls, want_div)
        logps.append(ll * LOG2E)
        preds.append(pred)
    logp = torch.stack(logps, dim=1).cpu()
    div = None
    if want_div:
        d = combine_divergence(div_fn, preds, form)
        div = d.reshape(n_members, -1).mean(dim=1).cpu()
    return logp, div


def same_structure(datas: Sequence[SourceData]) -> None:
    """Datasets trained as one ensemble must agree in everything but their values."""
    first = datas[0]
    def shape(d):
        return (d.n_sources, [d.in_shape(i) for i in range(d.n_sources)], len(d.train), len(d.test),
                d.target, d.n_classes, tuple(d.train.y.shape[1:]))
    for k, d in enumerate(datas[1:], start=2):
        if shape(d) != shape(first):
            raise ValueError(
                f"dataset {k} cannot train in one ensemble with dataset 1: (sources, input shapes, "
                f"train size, test size, target, classes, target shape) differ: {shape(d)} vs {shape(first)}. "
                "Fit them separately, or pad them to one shape (e.g. usable.data.with_classes).")


def fit(data: SourceData | Sequence[SourceData], decoders, *, divergence: Callable | None = None,
        schedule: Callable[[float, int], float] | None = None, betas: Sequence[float] = (0.0,),
        seeds: Sequence[int] = (0,), config: FitConfig | None = None,
        on_epoch_end: Callable[[int, "FitState"], Any] | None = None,
        models: Sequence[nn.Module] | None = None, desc: str = "fit") -> FitResult:
    """Train one decoder per source of ``data`` for every (seed, β) member, jointly.

    ``data`` may also be a list of G datasets of one shape (e.g. several tasks or data seeds):
    then members are (dataset, seed, β) triples, each training on its own dataset, still as one
    batched model. ``decoders``: one decoder plugin object for all sources, or a list (one per source).
    ``divergence``: per-sample pairwise divergence d(p, q) -> (...,), needed when any β > 0.
    ``schedule``: factor(t, epochs) in [0, 1] multiplying β (t = epoch index, fractional per step).
    ``models``: prebuilt ensembles (one per source) to continue training instead of building.
    ``on_epoch_end(epoch, state)``: called after each epoch; returning ``"stop"`` ends training.
    """
    cfg = config or FitConfig()
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    device = resolve_device(cfg.device)
    seeds, betas = [int(s) for s in seeds], [float(b) for b in betas]
    datas = list(data) if isinstance(data, (list, tuple)) else [data]
    data, G = datas[0], len(datas)
    if G > 1:
        same_structure(datas)
    n, E = data.n_sources, G * len(seeds) * len(betas)
    if n == 0:
        raise ValueError("fit needs at least one source")
    if any(b != 0 for b in betas) and n > 1 and divergence is None:
        raise ValueError("β > 0 with several sources needs a divergence (e.g. --divergence l1)")
    if not isinstance(decoders, (list, tuple)):
        decoders = [decoders] * n
    if len(decoders) != n:
        raise ValueError(f"{len(decoders)} decoders given for {n} sources")
    member_seeds = [s for _ in datas for s in seeds for _ in betas]
    beta_vec = torch.tensor([b for _ in datas for _ in seeds for b in betas], dtype=torch.float32, device=device)
    target, K = data.target, data.n_classes or 0
    # Several datasets are stacked on a leading axis and member e indexes its own (``gidx``).
    member_data = None if G == 1 else torch.tensor([g for g in range(G) for _ in seeds for _ in betas])
    gidx = None if G == 1 else member_data.to(device)[:, None]

    def stacked(tensors):
        return tensors[0] if G == 1 else torch.stack(list(tensors))

    def take(x, idx):  # rows ``idx`` (E, b) of each member's own dataset
        return x[idx] if G == 1 else x[gidx, idx]

    y_tr = stacked([d.train.y for d in datas]).to(device)
    test_xs = [stacked([d.test.xs[i] for d in datas]) for i in range(n)]
    test_y = stacked([d.test.y for d in datas])
    heads = data.train.y.shape[1] if (target == "classes" and data.train.y.ndim == 2) else None
    n_out = (heads or 1) * K if target == "classes" else 1

    if models is None:
        models = [make_ensemble(dec, data.in_shape(i), n_out, member_seeds, salt=i).to(device)
                  for i, dec in enumerate(decoders)]
    models = list(models)
    params = [p for m in models for p in m.parameters()]
    log_sigma = None
    if target == "real":
        log_sigma = nn.Parameter(torch.zeros(E, n, device=device))
        params.append(log_sigma)
    flat = _flatten_params(params)
    opt = _make_optimizer([flat] if flat is not None else params, cfg)
    lr_sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_decay)
    xs_tr = [stacked([d.train.xs[i] for d in datas]).to(device) for i in range(n)]
    N, B = len(data.train), min(cfg.batch_size, len(data.train))
    steps = math.ceil(N / B)
    gens = [torch.Generator().manual_seed(member_seed(s, 10_007)) for s in member_seeds]
    factor = schedule or (lambda t, epochs: 1.0)
    # The divergence enters training only where some β > 0; with β = 0 everywhere it is only
    # measured on the held-out split at the end.
    want_div = divergence is not None and n > 1 and any(b != 0 for b in betas)
    no_div = torch.zeros(E, device=device)
    # Small sources are gathered into each epoch's order once, so a step takes a slice (a view)
    # instead of an index gather per source; big ones (images) are gathered batch by batch.
    pre = [E * (x.numel() // G) * x.element_size() <= _PREGATHER_BYTES for x in xs_tr]

    hist = {k: [] for k in ("train_loss", "train_ce", "train_divergence", "beta", "test_ce")}
    state = FitState(models=models, log_sigma=log_sigma, device=device, n_members=E)
    bar = tqdm(range(cfg.epochs), desc=desc, disable=not cfg.progress, leave=False)
    epochs_run = 0
    for epoch in bar:
        for m in models:
            m.train()
        perms = torch.stack([torch.randperm(N, generator=g) for g in gens]).to(device)  # (E, N)
        y_ep = take(y_tr, perms)
        xs_ep = [take(x, perms) if p else None for x, p in zip(xs_tr, pre)]
        # Per-step records stay on the device and are summed once per epoch: no per-step sync.
        records, weights = [], []
        for step in range(steps):
            sl = slice(step * B, (step + 1) * B)  # each member its own batch (its own permutation)
            yb = y_ep[:, sl]
            t = epoch + (step / steps if cfg.schedule_per_step else 0.0)
            beta_t = beta_vec * float(factor(t, cfg.epochs))
            outs = [m(xe[:, sl] if xe is not None else take(x, perms[:, sl]))
                    for m, x, xe in zip(models, xs_tr, xs_ep)]
            ces, preds = [], []
            for i, out in enumerate(outs):
                ls = None if log_sigma is None else log_sigma[:, i]
                ll, pred = _log_lik_and_pred(out, yb, target, heads, K, ls, want_div)
                ces.append(-ll.reshape(E, -1).mean(dim=1))
                preds.append(pred)
            ce = torch.stack(ces)  # (n, E)
            loss_e = ce.mean(dim=0)
            div_e = no_div
            if want_div:
                div_e = combine_divergence(divergence, preds, cfg.divergence_form).reshape(E, -1).mean(dim=1)
                loss_e = loss_e + beta_t * div_e
            if flat is not None:
                flat.grad.zero_()
            else:
                opt.zero_grad(set_to_none=True)
            loss_e.sum().backward()
            opt.step()
            records.append(torch.cat([loss_e.detach(), div_e.detach(), beta_t, ce.detach().reshape(-1)]))
            weights.append(yb.shape[1] / N)
        sums = (torch.stack(records).double().cpu()
                * torch.tensor(weights, dtype=torch.float64)[:, None]).sum(dim=0)
        sums = sums.reshape(3 + n, E)  # loss, div, beta, ce_i
        lr_sched.step()
        epochs_run = epoch + 1
        hist["train_loss"].append(sums[0].numpy())
        hist["train_divergence"].append(sums[1].numpy())
        hist["beta"].append(sums[2].numpy())
        hist["train_ce"].append((sums[3:].T * LOG2E).numpy())
        last = epoch == cfg.epochs - 1
        if cfg.eval_every and (epoch % cfg.eval_every == 0 or last):
            logp, _ = evaluate(models, test_xs, test_y, target=target, n_classes=K, n_members=E,
                               log_sigma=log_sigma, batch_size=cfg.eval_batch_size, device=device,
                               member_data=member_data)
            hist["test_ce"].append((-logp.double().reshape(E, n, -1).mean(dim=2)).numpy())
        else:
            hist["test_ce"].append(np.full((E, n), np.nan))
        bar.set_postfix(loss=f"{float(sums[0].mean()):.4f}")
        stop = False
        if on_epoch_end is not None:
            stop = on_epoch_end(epoch, state) == "stop"
        if cfg.stop_loss is not None and float(sums[0].max()) <= cfg.stop_loss:
            stop = True
        if stop:
            break
    bar.close()

    test_logp, test_div = evaluate(models, test_xs, test_y, target=target, n_classes=K,
                                   n_members=E, div_fn=divergence, form=cfg.divergence_form,
                                   log_sigma=log_sigma, batch_size=cfg.eval_batch_size, device=device,
                                   member_data=member_data)
    if test_div is None:
        test_div = torch.zeros(E)
    return FitResult(seeds=seeds, betas=betas, names=list(data.names), test_logp=test_logp,
                     test_divergence=test_div.double().numpy(),
                     history={k: np.stack(v) for k, v in hist.items()}, models=models,
                     log_sigma=None if log_sigma is None else log_sigma.detach().cpu(),
                     epochs_run=epochs_run, n_datasets=G)


@dataclass
class FitState:
    """Handed to ``on_epoch_end``: the live ensembles (one per source), on ``device``."""

    models: list[nn.Module]
    log_sigma: torch.Tensor | None
    device: torch.device
    n_members: int
    extra: dict[str, Any] = field(default_factory=dict)
