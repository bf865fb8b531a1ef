"""The terminal form of ``usable results ls``: the table of ``usable.query_runs`` made readable.

Filtering (``--where``) and the columns themselves belong to the core (``usable.query_runs``,
also ``open_results(p).to_dataframe(where=...)``), so Python and the command line agree.
"""
from __future__ import annotations

import re

RUNTIME = ("device", "threads", "eval_batch_size", "progress")
STATS = (" sd", " ci_low", " ci_high")  # columns beside a value's mean (usable.query_runs)
KEEP = ("run", "metric", "sources")
MAX_VALUE_COLUMNS = 6


def split_columns(df) -> tuple[list[str], list[str]]:
    """(settings, values): ``query_runs`` puts every settings column first, ending with end_time."""
    cols = [str(c) for c in df.columns]
    cut = cols.index("end_time") + 1 if "end_time" in cols else len(cols)
    return cols[:cut], cols[cut:]


def compact(df):
    """The table for a terminal: runtime settings and the per-source columns (``sources`` shows
    them) left out; settings every row shares moved to one line (a dict); each value shown as
    "mean ± sd" (the full interval columns are in --json); at most MAX_VALUE_COLUMNS value columns
    (the count of the rest is returned)."""
    import pandas as pd
    settings, values = split_columns(df)
    settings = [c for c in settings if c not in RUNTIME and not re.fullmatch(r"source\d+", c)
                and not df[c].isna().all()]
    same = {}
    if len(df) > 1:
        same = {c: df[c].iloc[0] for c in settings
                if c not in KEEP + ("end_time",) and df[c].astype(str).nunique() == 1}
    out = df[[c for c in settings if c not in same and (c != "store" or df.store.nunique() > 1)]].copy()
    means = [c for c in values if not c.endswith(STATS)]
    for c in means[:MAX_VALUE_COLUMNS]:
        sd = df[f"{c} sd"] if f"{c} sd" in df else pd.Series([None] * len(df), index=df.index)
        out[c] = ["" if pd.isna(m) else f"{m:.4f}" + ("" if pd.isna(s) else f" ± {s:.4f}") for m, s in zip(df[c], sd)]
    return out, same, max(0, len(means) - MAX_VALUE_COLUMNS)
