"""Network checkpoints: versioned, written atomically, and read without unpickling code.

A checkpoint holds plain data only (tensors, numbers, strings, lists, dicts): ``torch.load`` reads
it with ``weights_only=True``, so a crafted file cannot run code. ``nc:save=PATH``,
``nc:checkpoint=PATH``, ``dib:checkpoint=PATH`` and ``track``'s resumable state all use it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

FORMAT = "usable-networks/1"
_LEGACY = ("usable-nc-checkpoint/1",)


def save_checkpoint(path: str | os.PathLike, state_dicts: list[dict], **meta: Any) -> Path:
    """Write network state dicts and plain metadata to ``path`` (tmp file + rename: old or new, never half)."""
    import torch
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "meta": meta, "state_dicts": list(state_dicts)}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[list[dict], dict[str, Any]]:
    """(state dicts, metadata) of a checkpoint; a plain state dict of one network also loads."""
    import pickle

    import torch

    from .errors import DataError
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist (write one with nc:save=PATH)")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise DataError(f"checkpoint {path} is not a usable checkpoint or state dict: it holds more than "
                        f"tensors and plain data, or is damaged ({str(exc).splitlines()[0][:200]})") from None
    if isinstance(ck, dict) and ck.get("format") == FORMAT:
        return list(ck["state_dicts"]), dict(ck.get("meta", {}))
    if isinstance(ck, dict) and ck.get("format") in _LEGACY:
        return list(ck["state_dicts"]), {k: v for k, v in ck.items() if k not in ("format", "state_dicts")}
    if isinstance(ck, dict) and all(hasattr(v, "shape") for v in ck.values()):
        return [ck], {"seeds": [0]}
    raise DataError(f"checkpoint {path}: unknown format {ck.get('format') if isinstance(ck, dict) else type(ck)}; "
                    f"expected {FORMAT}")


def load_networks(path: str | os.PathLike, build: Callable[[], Any], expect: dict[str, Any] | None = None):
    """Networks from a checkpoint: ``build()`` makes each (same architecture), then its weights load.
    ``expect``: metadata that must match (e.g. input shape), with a clear error if not."""
    from .errors import DataError
    state_dicts, meta = load_checkpoint(path)
    for key, want in (expect or {}).items():
        if key in meta and meta[key] != want:
            raise DataError(f"checkpoint {path} has {key}={meta[key]!r}, but this run needs {want!r}")
    nets = []
    for sd in state_dicts:
        net = build()
        try:
            net.load_state_dict(sd)
        except RuntimeError as exc:
            raise DataError(f"checkpoint {path} does not fit this decoder: {str(exc).splitlines()[0]}") from None
        nets.append(net)
    return nets, meta
