"""From per-session trial features to one SourceData: one source per (session, unit group,
window), sessions paired trial by trial through the target class, a stratified split."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from usable import DataError, SourceData, Split, train_test_split_indices

from .recording import TrialFeatures
from .targets import class_labels
from .windows import Window, normalize

PAIRINGS = ("shuffled", "ordered")


def pair_by_class(labels: Sequence[np.ndarray], seed: int, pairing: str = "shuffled",
                  n_classes: int | None = None) -> tuple[list[np.ndarray], dict[str, int]]:
    """The RINE paper's surrogate pairing of sessions recorded on different days.

    For each class, the trials of that class in every session are put in order (a seeded
    shuffle per session and class with ``pairing=shuffled``, file order with ``ordered``) and
    paired position by position; each class keeps as many pairs as its smallest session has
    trials and the extras are dropped. Returns one index array per session (aligned, grouped by
    class) and a report of how many trials each session lost.
    """
    if pairing not in PAIRINGS:
        raise DataError(f"pairing={pairing!r}; choose one of {', '.join(PAIRINGS)}")
    if len(labels) == 1:
        return [np.arange(len(labels[0]))], {}
    rng = np.random.default_rng(seed)
    K = n_classes or int(max(int(lab.max()) for lab in labels if len(lab))) + 1
    out: list[list[np.ndarray]] = [[] for _ in labels]
    for c in range(K):
        members = [np.flatnonzero(lab == c) for lab in labels]
        if pairing == "shuffled":
            members = [m[rng.permutation(len(m))] for m in members]
        m = min(len(x) for x in members)
        for s, x in enumerate(members):
            out[s].append(x[:m])
    idx = [np.concatenate(o).astype(np.int64) for o in out]
    report = {f"session{s + 1}_unpaired_trials": int(len(lab) - len(i)) for s, (lab, i) in enumerate(zip(labels, idx))}
    return idx, report


def _unique_names(names: list[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        cand, k = n, 2
        while cand in out:
            cand, k = f"{n}#{k}", k + 1
        out.append(cand)
    return out


def build_source_data(features: list[TrialFeatures], windows: list[Window], *, target: str, bins: int,
                      centre, groups: Sequence[str] = (), norm: str = "counts", test_fraction: float = 0.2,
                      seed: int = 0, pairing: str = "shuffled", attrs: dict | None = None) -> SourceData:
    """Sources = sessions × unit groups × windows (names list only the parts that vary)."""
    # One encoding over all sessions, so class k means the same target in every session.
    raws = [f.target_raw for f in features]
    try:
        joined = np.concatenate(raws, axis=0)
    except ValueError as exc:
        raise DataError(f"target column {target!r} has different shapes across sessions: {exc}") from None
    labels_all, class_names, keep = class_labels(joined, bins, centre, target)
    if not keep.all():  # class_labels drops NaN targets; trial_features already removed them
        raise DataError(f"target column {target!r} has NaN rows that were not filtered")
    bounds = np.cumsum([0] + [len(r) for r in raws])
    labels = [labels_all[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    K = len(class_names)
    idx, pair_report = pair_by_class(labels, seed, pairing, K)
    y = labels[0][idx[0]]
    if len(y) == 0:
        raise DataError("no trials could be paired across sessions: no target class occurs in every session")

    sess_names = _unique_names([f.name for f in features])
    xs: list[np.ndarray] = []
    names: list[list[str]] = []
    for f, sname, ix in zip(features, sess_names, idx):
        present = list(dict.fromkeys(f.unit_groups.tolist()))  # order of the units table
        chosen = list(groups) if groups else present
        missing = [g for g in chosen if g not in present]
        if missing:
            raise DataError(f"{f.name}: no units in group(s) {', '.join(missing)}; groups present: {', '.join(present)}")
        feats = normalize(f.counts[ix], windows, norm)  # (N, W, U)
        for g in chosen:
            units = np.flatnonzero(f.unit_groups == g)
            if len(units) == 0:
                raise DataError(f"{f.name}: the units table is empty; there are no spike trains to count")
            for k, w in enumerate(windows):
                xs.append(feats[:, k, units])
                names.append([sname, g, w.label])
    parts = list(zip(*names))
    varying = [i for i in range(3) if len(set(parts[i])) > 1] or [2]
    src_names = _unique_names(["/".join(n[i] for i in varying) for n in names])

    tr, te = train_test_split_indices(len(y), test_fraction, seed, stratify=y)
    if len(te) == 0 or len(tr) == 0:
        raise DataError(f"{len(y)} trials and test_fraction={test_fraction} leave an empty split")
    yt = torch.from_numpy(y.astype(np.int64))

    def split(ii):
        return Split([torch.from_numpy(np.ascontiguousarray(x[ii])) for x in xs], yt[ii])

    info = dict(attrs or {})
    info.update({"n_trials": int(len(y)), "windows_ms": "+".join(w.label for w in windows),
                 "normalize": norm, "target_column": target, "target_bins": int(bins)})
    for f in features:
        for why, n in f.dropped.items():
            key = f"dropped_{why}".replace(" ", "_").replace("=", "_")
            info[key] = int(info.get(key, 0)) + int(n)
    info.update(pair_report)
    return SourceData(split(tr), split(te), src_names, "classes", K, class_names, info)


def session_name(path: str | Path) -> str:
    return Path(str(path)).stem
