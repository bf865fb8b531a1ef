"""``--where`` filters over the rows of ``Results.to_dataframe()``.

``KEY=VALUE`` / ``KEY!=VALUE`` compare text; a spec column (metric, decoder, divergence,
schedule, sources) also matches its plugin name (``metric=rine`` matches ``rine:per_class=true``).
``KEY<V``, ``<=``, ``>``, ``>=`` compare numbers. ``beta``/``seed`` read the run's lists: a run
matches when any of its values does (``beta>=5`` keeps runs that include a β of at least 5).
"""
from __future__ import annotations

import operator
import re

from usable import SpecError

_OPS = {"<=": operator.le, ">=": operator.ge, "!=": operator.ne, "=": operator.eq, "<": operator.lt, ">": operator.gt}
_SPECS = ("metric", "decoder", "divergence", "schedule", "sources")
_LISTS = {"beta": "betas", "seed": "seeds"}


def parse_where(text: str) -> tuple[str, str, str]:
    m = re.fullmatch(r"\s*([A-Za-z_][\w\[\]=.,+ -]*?)\s*(<=|>=|!=|=|<|>)\s*(.*?)\s*", text)
    if not m or not m[3]:
        raise SpecError(f"--where {text!r}: write KEY=VALUE or KEY>=NUMBER, e.g. --where metric=rine --where 'beta>=5'")
    return m[1], m[2], m[3]


def _matches(cell, op: str, want: str, key: str) -> bool:
    values = cell if isinstance(cell, (list, tuple)) else [cell]
    for v in values:
        if op in ("=", "!="):
            texts = {str(v)} | ({str(v).split(":")[0]} if key in _SPECS else set()) | \
                    (set(str(v).split()) if key == "sources" else set())
            hit = any(_num_eq(t, want) for t in texts)
            if (op == "=") == hit:
                if op == "=":
                    return True
                continue
            if op == "!=":
                return False
        else:
            try:
                if _OPS[op](float(v), float(want)):
                    return True
            except (TypeError, ValueError):
                continue
    return op == "!="


def _num_eq(text: str, want: str) -> bool:
    try:
        return float(text) == float(want)
    except ValueError:
        return text == want


def apply_where(df, where):
    for text in where:
        key, op, want = parse_where(text)
        col = _LISTS.get(key, key)
        if col not in df.columns:
            raise SpecError(f"--where {text!r}: no column {key!r}; columns: {', '.join(map(str, df.columns))}")
        df = df[[_matches(cell, op, want, col) for cell in df[col]]]
    return df.reset_index(drop=True)


def select_runs(paths, where, values: bool = True):
    """The rows of every store's runs that pass ``where``. Settings filters run first, so the
    headline values are read only for the runs that can still match."""
    import pandas as pd

    from usable import open_results
    frames = []
    for path in paths:
        res = open_results(path)
        df = res.to_dataframe(values=False)
        later = [w for w in where if _LISTS.get(parse_where(w)[0], parse_where(w)[0]) not in df.columns]
        df = apply_where(df, [w for w in where if w not in later])
        if values and not df.empty:
            df = res.to_dataframe(values=True, runs=list(df.run))
        frames.append(apply_where(df, later) if later else df)
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return df.dropna(axis=1, how="all")


RUNTIME = ("device", "threads", "eval_batch_size", "progress")
KEEP = ("run", "metric", "sources")
MAX_VALUE_COLUMNS = 6


def compact(df):
    """The table for a terminal: runtime settings left out; settings every row shares moved to
    one line (a dict); each value shown as "mean ± sd"; at most MAX_VALUE_COLUMNS value columns
    (the count of the rest is returned)."""
    import pandas as pd
    df = df.drop(columns=[c for c in RUNTIME if c in df])
    settings = [c for c in df.columns if "[" not in str(c) and c not in _VALUE_NAMES(df)]
    same = {}
    if len(df) > 1:
        same = {c: df[c].iloc[0] for c in settings if c not in KEEP + ("end_time",) and df[c].astype(str).nunique() == 1}
    value_cols = [c for c in df.columns if c not in settings and not str(c).endswith(" sd")]
    out = df[[c for c in settings if c not in same and c != "store" or len(df.store.unique()) > 1]].copy()
    for c in value_cols[:MAX_VALUE_COLUMNS]:
        sd = df.get(f"{c} sd")
        out[c] = [("" if pd.isna(m) else f"{m:.4f}" + ("" if sd is None or pd.isna(s) else f" ± {s:.4f}"))
                  for m, s in zip(df[c], sd if sd is not None else [None] * len(df))]
    return out, same, max(0, len(value_cols) - MAX_VALUE_COLUMNS)


def _VALUE_NAMES(df):
    """Value columns without a coordinate (a headline that is a single number, e.g. null_entropy)."""
    import numpy as np
    fixed = {"store", "run", "kind", "metric", "sources", "decoder", "divergence", "schedule", "betas", "seeds",
             "end_time", *RUNTIME}
    from usable import FitConfig
    fixed |= set(FitConfig.__dataclass_fields__)
    return [c for c in df.columns if c not in fixed and (str(c).endswith(" sd") or np.issubdtype(df[c].dtype, np.floating))]
