"""Variational lower bounds on I(X;Y) from a critic f(x, y), trained through the one loop ``usable.fit``.

The critic is separable, f(x, y) = s·g(x)·h(y)/√d: g and h are two decoders (one per source, so
the run's decoder family embeds X and Y into R^d) and s = exp(learned log-scale) per member. One
(E, B, B) score matrix per batch gives every bound at once: its diagonal holds the B positive
pairs, its off-diagonal entries B(B−1) pairs from the product of marginals ("shuffled" negatives).

Bounds, in nats during training (the loss is minus the bound), per member:

- ``infonce`` (van den Oord et al. 2018; Poole et al. 2019): mean_i [f_ii − log (1/K) Σ_j e^{f_ij}];
  never above log K, K the number of candidates in the softmax.
- ``nwj`` (Nguyen, Wainwright & Jordan 2010): E_p[f] − e^{−1}·E_q[e^f].
- ``mine`` (Belghazi et al. 2018): the Donsker-Varadhan bound E_p[f] − log E_q[e^f], trained with
  MINE's bias-corrected gradient: the denominator of ∇ log E_q[e^f] is an exponential moving
  average of E_q[e^f] over batches (state of the objective, not a parameter).
- ``smile`` (Song & Ermon 2020): E_p[f] − log E_q[clip(e^f, e^{−τ}, e^{τ})], the critic trained
  with the Jensen-Shannon (f-GAN) bound, as the authors do.

The loss returned to the loop has the bound's value and the training rule's gradient (value −
its detached self + gradient term), so the loop's training curves read as the bound itself.

Held-out: the bound on the whole test split, each test pair against every other test pair (or
against the others of its block of ``negatives`` samples). Per-sample contributions whose mean is
the estimate fill the loop's (E, n_sources, N) shape: source 0 indexes them by x (row i: x_i
against all y_j), source 1 by y (column j); for InfoNCE these are the two directions of the bound.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from usable import LOG2E, DataError, Members, SourceData, SpecError, make_ensemble, predict

from .selection import BestEpoch, carve_validation

BOUNDS = ("infonce", "nwj", "mine", "smile")
# Held-out score matrices are computed this many elements (members × rows × columns) at a time.
_CHUNK_ELEMENTS = 8 * 2**20


def _safe_exp(z: torch.Tensor, cap: float = 30.0) -> torch.Tensor:
    """e^z, continued linearly (value and slope of e^cap) above ``cap``: finite wherever a member's
    critic runs away (NWJ's e^{f−1} term overflows float64 near f = 710 and one infinite member
    would end the whole ensemble's fit), identical wherever the bound is meaningful (above −e^30)."""
    return torch.where(z <= cap, torch.exp(z.clamp(max=cap)), math.exp(cap) * (1.0 + (z - cap)))


def _lme(s: torch.Tensor, dims, count) -> torch.Tensor:
    """log mean exp over ``dims`` with ``count`` entries (masked entries are −inf)."""
    return torch.logsumexp(s, dim=dims) - math.log(count)


class CriticObjective:
    """The four-method objective of ``usable.fit`` for critic bounds; one bound per member.

    ``bounds``: one name per member (or one for all); ``clip``: SMILE's τ; ``ema``: MINE's moving
    average rate; ``negatives``: held-out block size (0: all test samples compare with each other).
    """

    # No class or real target is decoded: code that specialises on ``Objective.target`` (a decoder's
    # fused training kernel, say) sees that this objective is not one it knows.
    target = "critic"

    def __init__(self, bounds: Sequence[str], clip: float = 5.0, ema: float = 0.01, negatives: int = 0):
        bad = [b for b in bounds if b not in BOUNDS]
        if bad:
            raise SpecError(f"unknown bound(s) {bad}; choose from {', '.join(BOUNDS)}")
        if not clip > 0:
            raise SpecError(f"smile: clip τ must be > 0, got {clip}")
        if not 0 < ema <= 1:
            raise SpecError(f"mine: ema (the moving average's rate) must lie in (0, 1], got {ema}")
        if negatives < 0 or negatives == 1:
            raise SpecError(f"negatives={negatives}: give 0 (every test sample) or a block size >= 2")
        self.bounds, self.clip, self.ema, self.negatives = list(bounds), float(clip), float(ema), int(negatives)
        self.log_scale: nn.Parameter | None = None

    # -------------------------------------------------------------------- the loop's protocol
    def setup(self, n_members: int, device: torch.device) -> None:
        if len(self.bounds) == 1:
            self.bounds = self.bounds * n_members
        if len(self.bounds) != n_members:
            raise SpecError(f"{len(self.bounds)} bounds for {n_members} ensemble members")
        self.kind = torch.tensor([BOUNDS.index(b) for b in self.bounds], device=device)
        self.log_scale = nn.Parameter(torch.zeros(n_members, device=device))
        self.log_ma = torch.full((n_members,), float("nan"), dtype=torch.float64, device=device)

    def parameters(self) -> list[torch.Tensor]:
        return [self.log_scale]

    def scores(self, g: torch.Tensor, h: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """f(x_i, y_j) for every pair: (e, b, d) × (e, N, d) -> (e, b, N), e = all or ``members``."""
        log_scale = self.log_scale if members is None else self.log_scale[members]
        scale = torch.exp(log_scale.detach() if members is not None else log_scale) / math.sqrt(g.shape[-1])
        return torch.bmm(g, h.transpose(1, 2)) * scale.view(-1, 1, 1)

    def step(self, outs, y, beta, want_div):
        """Minus each member's bound (E,) with its training rule's gradient; no divergence.

        Each bound is computed only on its own members: an unused bound can be infinite for a
        critic trained by another (InfoNCE's critic is free up to any c(x)), and 0·∞ in the
        backward pass would poison the shared gradient."""
        g, h = outs
        s = self.scores(g.float(), h.float())
        E, B = s.shape[0], s.shape[1]
        if B < 2:  # a last batch of one pair has no negative: no bound, no update
            loss = (s.sum(dim=(1, 2)) * 0.0).double()
            return loss, torch.zeros(E, device=s.device), loss.unsqueeze(0).expand(len(outs), E)
        loss = torch.zeros(E, dtype=torch.float64, device=s.device)
        for k, name in enumerate(BOUNDS):
            idx = torch.nonzero(self.kind == k).flatten()
            if len(idx):
                loss = loss.index_put((idx,), -self._bound(name, s[idx], idx))
        return loss, torch.zeros(E, device=s.device), loss.unsqueeze(0).expand(len(outs), E)

    def _bound(self, name: str, s: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """One bound (nats, float64) for the members ``idx`` from their (e, B, B) score matrices."""
        e, B = s.shape[0], s.shape[1]
        diag = s.diagonal(dim1=1, dim2=2)
        pos = diag.mean(dim=1).double()
        if name == "infonce":
            return (diag - torch.logsumexp(s, dim=2)).mean(dim=1).double() + math.log(B)
        eye = torch.eye(B, dtype=torch.bool, device=s.device)
        off = s.masked_fill(eye, float("-inf"))
        lme_off = _lme(off.reshape(e, -1), 1, B * (B - 1)).double()  # log E_q[e^f]
        if name == "nwj":
            return pos - _safe_exp(lme_off - 1.0)
        if name == "mine":
            with torch.no_grad():  # MINE's moving average of E_q[e^f], kept in log space
                old = self.log_ma[idx]
                decayed = old + math.log1p(-self.ema) if self.ema < 1 else torch.full_like(old, float("-inf"))
                new = torch.logaddexp(decayed, lme_off + math.log(self.ema))
                self.log_ma[idx] = torch.where(torch.isnan(old), lme_off, new)
            rule = pos - _safe_exp(lme_off - self.log_ma[idx])  # ∇ = E_p∇f − E_q[e^f ∇f]/ma
            return (pos - lme_off).detach() + (rule - rule.detach())
        # smile: the clipped Donsker-Varadhan value, the Jensen-Shannon (f-GAN) gradient
        clipped = _lme(off.clamp(-self.clip, self.clip).masked_fill(eye, float("-inf")).reshape(e, -1), 1,
                       B * (B - 1)).double()
        js = ((-nn.functional.softplus(-diag)).mean(dim=1)
              - nn.functional.softplus(off).sum(dim=(1, 2)) / (B * (B - 1))).double()  # softplus(−inf) = 0
        return (pos - clipped).detach() + (js - js.detach())

    @torch.no_grad()
    def held_out(self, outs, y, with_divergence):
        """Per-sample contributions in bits (E, 2, N): by x (rows) and by y (columns)."""
        g, h = (o.float() for o in outs)
        E, N = g.shape[0], g.shape[1]
        K = N if self.negatives == 0 or self.negatives >= N else self.negatives
        block = torch.arange(N, device=g.device) // K
        size = torch.bincount(block).double()[block]  # candidates in each sample's block
        if bool((size < 2).any()):
            raise DataError(f"held-out blocks of {K} leave a sample with no negative; use a test split of at least "
                            "2 samples and negatives=0 or a block size that does not leave a last block of 1")
        out = torch.empty(E, 2, N, dtype=torch.float64)
        pairs = float((size - 1).sum())
        for k, name in enumerate(BOUNDS):
            idx = torch.nonzero(self.kind == k).flatten()
            if not len(idx):
                continue
            st = _pair_stats(lambda a, b: self.scores(a, b, idx), g[idx], h[idx], None if K == N else block, name,
                             self.clip)
            d = st["diag"]
            if name == "infonce":
                by_x, by_y = d - st["row_all"] + torch.log(size), d - st["col_all"] + torch.log(size)
            elif name == "nwj":
                by_x = d - torch.exp(st["row_off"] - torch.log(size - 1) - 1.0)
                by_y = d - torch.exp(st["col_off"] - torch.log(size - 1) - 1.0)
            else:  # mine (DV) and smile: one log-mean-exp over every negative pair
                by_x = by_y = d - (st["glob"] - math.log(pairs))[:, None]
            out[idx.cpu(), 0], out[idx.cpu(), 1] = by_x.cpu(), by_y.cpu()
        return (out * LOG2E).float(), None

    @torch.no_grad()
    def selection(self, outs) -> np.ndarray:
        """Each member's held-out value of what its critic is trained to maximise (E,), in bits: the
        bound itself, except for SMILE, whose clipped estimate is not a bound (choosing the epoch
        that maximises it would pick its over-estimates) and whose critic maximises the
        Jensen-Shannon bound E_p[−softplus(−f)] − E_q[softplus(f)]."""
        per, _ = self.held_out(outs, None, False)
        value = per[:, 0].double().mean(dim=1).numpy()
        idx = torch.nonzero(self.kind == BOUNDS.index("smile")).flatten()
        if len(idx):
            g, h = (o.float()[idx] for o in outs)
            N = g.shape[1]
            K = N if self.negatives == 0 or self.negatives >= N else self.negatives
            block = torch.arange(N, device=g.device) // K
            pairs = float((torch.bincount(block).double()[block] - 1).sum())
            st = _pair_stats(lambda a, b: self.scores(a, b, idx), g, h, None if K == N else block, "js", self.clip)
            js = -nn.functional.softplus(-st["diag"]).mean(dim=1) - st["softplus_off"] / pairs
            value[idx.cpu().numpy()] = (js * LOG2E).numpy()
        return value

    def cap_bits(self, n_test: int) -> float:
        """InfoNCE's ceiling log2 K for this held-out split."""
        K = n_test if self.negatives == 0 or self.negatives >= n_test else self.negatives
        return math.log2(K)


def _pair_stats(scores, g, h, block, name: str, clip: float) -> dict[str, torch.Tensor]:
    """What bound ``name`` needs from the N × N held-out score matrix, a chunk of rows at a time
    (float32 passes, float64 results): the diagonal and log-sum-exps over rows, columns or all
    negative pairs (within each sample's block when ``block`` is given)."""
    E, N = g.shape[0], g.shape[1]
    rows = max(1, _CHUNK_ELEMENTS // max(1, E * N))
    cols = torch.arange(N, device=g.device)
    ninf = float("-inf")
    acc = {"diag": torch.empty(E, N, dtype=torch.float64), "row_all": torch.empty(E, N, dtype=torch.float64),
           "row_off": torch.empty(E, N, dtype=torch.float64),
           "col_all": torch.full((E, N), ninf, dtype=torch.float64),
           "col_off": torch.full((E, N), ninf, dtype=torch.float64),
           "glob": torch.full((E,), ninf, dtype=torch.float64), "softplus_off": torch.zeros(E, dtype=torch.float64)}
    for start in range(0, N, rows):
        idx = cols[start:start + rows]
        s = scores(g[:, idx], h)  # (E, b, N)
        if block is not None:
            s = s.masked_fill((block[idx][:, None] != block[None, :]), ninf)
        local = torch.arange(len(idx), device=g.device)
        acc["diag"][:, idx] = s[:, local, idx].double().cpu()
        if name == "infonce":
            acc["row_all"][:, idx] = torch.logsumexp(s, dim=2).double().cpu()
            acc["col_all"] = torch.logaddexp(acc["col_all"], torch.logsumexp(s, dim=1).double().cpu())
            continue
        if name == "smile":
            s = s.clamp(-clip, clip) if block is None else torch.where(s > ninf, s.clamp(-clip, clip), s)
        s[:, local, idx] = ninf  # the positive pairs are not negatives
        if name == "js":  # softplus(−inf) = 0: the positives and other blocks add nothing
            acc["softplus_off"] += nn.functional.softplus(s).sum(dim=(1, 2)).double().cpu()
            continue
        row_off = torch.logsumexp(s, dim=2).double().cpu()
        if name == "nwj":
            acc["row_off"][:, idx] = row_off
            acc["col_off"] = torch.logaddexp(acc["col_off"], torch.logsumexp(s, dim=1).double().cpu())
        else:
            acc["glob"] = torch.logaddexp(acc["glob"], torch.logsumexp(row_off, dim=1))
    return acc


# ------------------------------------------------------------------------------------ training
def train_critics(fit, datas: Sequence[SourceData], bounds: Sequence[str], decoder, seeds: Sequence[int],
                  embed: int = 64, clip: float = 5.0, ema: float = 0.01, negatives: int = 0,
                  validation: float = 0.0, patience: int = 5, split_seed: int = 0,
                  task_names: Sequence[str] | None = None, desc: str = "critics"):
    """Train critics for every (bound, task, seed) as ONE ensemble through ``fit`` and return an
    xarray Dataset with dims (estimator, task, seed[, sample, epoch]) in bits.

    ``fit``: ``usable.fit`` (with its config bound) or a ``RunContext.fit``; ``datas``: pair
    datasets (two sources, x and y) of one shape; members are (bound, task) datasets × seeds.
    """
    import xarray as xr
    if embed < 1:
        raise SpecError(f"embed (the critic's embedding size d) must be >= 1, got {embed}")
    datas, bounds = list(datas), list(bounds)
    G = len(datas)
    callbacks, val = [], None
    if validation:
        datas, val = carve_validation(datas, validation, split_seed)
    stacked = [d for _ in bounds for d in datas]  # dataset index = bound index × G + task index
    members = Members(len(stacked), tuple(int(s) for s in seeds), (0.0,))
    member_bounds = [bounds[k // G] for k in members.column("dataset")]
    obj = CriticObjective(member_bounds, clip=clip, ema=ema, negatives=negatives)
    if val is not None:
        val_xs = [torch.stack([v.xs[i] for _ in bounds for v in val]) for i in range(2)]
        member_data = torch.tensor(members.column("dataset"))
        callbacks.append(BestEpoch(lambda state: obj.selection(predict(state.models, val_xs, members.size, 4096,
                                                                       state.device, member_data)), patience))
    models = [make_ensemble(decoder, datas[0].in_shape(i), embed, members.column("seed"), salt=i) for i in range(2)]
    names = [f"{b}|{k}" for b in bounds for k in range(G)]
    res = fit(stacked, decoders=decoder, betas=[0.0], seeds=list(seeds), models=models, objective=obj,
              dataset_names=names, desc=desc, callbacks=callbacks)
    ds = res.to_dataset().isel(beta=0, drop=True)
    if task_names is None:
        task_names = [str(d.attrs.get("task", k)) for k, d in enumerate(datas)]
    task_names = list(task_names)
    S, N = len(seeds), ds.sizes["sample"]

    def split_dims(a: np.ndarray, lead_epoch: bool = False) -> np.ndarray:
        if lead_epoch:
            return a.reshape(a.shape[0], len(bounds), G, *a.shape[2:])
        return a.reshape(len(bounds), G, *a.shape[1:])

    point = ds.log_likelihood.transpose("dataset", "seed", "source", "sample").values
    train_curve = -ds.train_loss.transpose("epoch", "dataset", "seed").values * LOG2E
    test_curve = -ds.test_cross_entropy_curve.transpose("epoch", "dataset", "seed", "source").values[..., 0]
    out = xr.Dataset(
        {
            "mutual_information": (("estimator", "task", "seed"), split_dims(point[:, :, 0].mean(axis=-1)),
                                   {"units": "bit", "long_name": "held-out critic bound on I(X;Y)"}),
            "pointwise": (("estimator", "task", "seed", "sample"), split_dims(point[:, :, 0]),
                          {"units": "bit", "long_name": "per-test-sample contribution to the bound (mean = estimate)"}),
            "mutual_information_by_y": (("estimator", "task", "seed"), split_dims(point[:, :, 1].mean(axis=-1)),
                                        {"units": "bit", "long_name": "the held-out bound with negatives indexed by y "
                                                                      "(InfoNCE: the reverse direction)"}),
            "train_bound_curve": (("epoch", "estimator", "task", "seed"), split_dims(train_curve, True),
                                  {"units": "bit", "long_name": "training bound per epoch (mean over batches)"}),
            "test_bound_curve": (("epoch", "estimator", "task", "seed"), split_dims(test_curve, True),
                                 {"units": "bit", "long_name": "held-out bound per epoch"}),
        },
        coords={"estimator": bounds, "task": task_names, "seed": list(seeds), "sample": np.arange(N),
                "epoch": np.arange(ds.sizes["epoch"])})
    out["infonce_cap"] = xr.DataArray(obj.cap_bits(N), attrs={"units": "bit",
                                                              "long_name": "log2 K: InfoNCE's ceiling on this split"})
    if callbacks:
        ep = callbacks[0].best_epoch()[:, 0].reshape(len(bounds), G, S)
        out["best_epoch"] = (("estimator", "task", "seed"), ep,
                             {"units": "1", "long_name": "epoch chosen on the validation split (0-based)"})
        vc = np.stack(callbacks[0].history)[:, :, 0].reshape(-1, len(bounds), G, S)
        out["validation_curve"] = xr.DataArray(
            vc, dims=("epoch", "estimator", "task", "seed"),
            attrs={"units": "bit",
                   "long_name": "epoch-selection criterion on the validation pairs (the bound; SMILE: its JS bound)"})
    out.attrs.update({"validation": float(validation), "patience": int(patience)})
    out.attrs.update({"critic": "separable s·g(x)·h(y)/sqrt(d)", "embed": int(embed), "clip": float(clip),
                      "ema": float(ema), "negatives": int(negatives), "epochs_run": int(res.epochs_run),
                      "n_test": int(N), "seeds": S})
    return out
