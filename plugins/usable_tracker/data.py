"""The data a tracker measures on, in a fixed order, and this process's share of it.

The training loader itself is never iterated: its sampler (and that sampler's generator) would
advance, and training would change. For a ``DataLoader`` over a map-style dataset the tracker
makes its own loader over the same dataset, in dataset order, with its own batch size; so the
relabellings of the minimality decoders (within-class index in dataset order) are the same every
epoch, and on every number of processes. Under ``torch.distributed`` process r measures the
samples r, r + W, r + 2W, ... (no padding, no sample twice), and the statistics are merged.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import torch

from usable import SpecError


def world() -> tuple[int, int]:
    """(rank, world size): (0, 1) without an initialised torch.distributed process group."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def default_batch(batch: Any) -> tuple[Any, torch.Tensor]:
    """A loader's batch as (inputs, labels): the first two items of a tuple or list."""
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise SpecError(f"a measurement batch is a {type(batch).__name__}, not (inputs, labels); pass "
                    "batch=lambda b: (b['image'], b['label']) (whatever gives inputs and labels)")


class MeasureData:
    """One split: ``batches()`` yields (x, y) of this process's share in a fixed order."""

    def __init__(self, data: Any, split: str, batch_size: int, batch: Callable | None, rank: int, world_size: int):
        from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset, TensorDataset
        self.split, self.batch_size, self.unpack = split, int(batch_size), batch or default_batch
        self.rank, self.world = rank, world_size
        self.sharded, self.total = True, None
        self._tensors = self._loader = self._iterable = None
        plain = data.dataset if isinstance(data, DataLoader) and batch is None else data
        if isinstance(plain, TensorDataset) and len(plain.tensors) == 2:
            data = tuple(plain.tensors)  # sliced as they are (memory layout kept), not re-collated
        if isinstance(data, (tuple, list)) and len(data) == 2 and all(torch.is_tensor(t) for t in data):
            x, y = data
            if x.shape[0] != y.shape[0]:
                raise SpecError(f"{split}: {x.shape[0]} inputs but {y.shape[0]} labels")
            self.total = int(x.shape[0])
            self._tensors = (x[rank::world_size], y[rank::world_size])
            self.describe = f"tensors {tuple(x.shape)}, in order"
            return
        source = data.dataset if isinstance(data, DataLoader) else data
        if isinstance(source, Dataset) and not isinstance(source, IterableDataset) and hasattr(source, "__len__"):
            self.total = len(source)
            part = Subset(source, range(rank, self.total, world_size)) if world_size > 1 else source
            kw = {}
            if isinstance(data, DataLoader):
                kw = dict(collate_fn=data.collate_fn, num_workers=data.num_workers, pin_memory=data.pin_memory,
                          worker_init_fn=data.worker_init_fn)
            self._loader = DataLoader(part, batch_size=self.batch_size, shuffle=False, drop_last=False, **kw)
            self.describe = f"{type(source).__name__} of {self.total} samples, in dataset order"
            return
        if iter(data) is data:
            raise SpecError(f"{split}: a one-shot iterator; the tracker reads the data every measured epoch, so pass "
                            "a DataLoader, a Dataset or (x, y) tensors")
        self._iterable, self.sharded = data, False
        self.describe = f"{type(data).__name__} (iterated as given)"

    @property
    def n(self) -> int | None:
        """Samples this process measures, where known before a pass."""
        if self._tensors is not None:
            return int(self._tensors[0].shape[0])
        if self._loader is not None:
            return len(self._loader.dataset)
        return None

    def batches(self) -> Iterator[tuple[Any, torch.Tensor]]:
        if self._tensors is not None:
            x, y = self._tensors
            for s in range(0, x.shape[0], self.batch_size):
                yield x[s:s + self.batch_size], y[s:s + self.batch_size]
            return
        for b in (self._loader if self._loader is not None else self._iterable):
            x, y = self.unpack(b)
            yield x, torch.as_tensor(y)


# ---------------------------------------------------------------------------------- merging
def _comm_device() -> torch.device:
    import torch.distributed as dist
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_sum(values: list[float]) -> list[float]:
    """Sums over processes (float64), in one all_reduce."""
    import torch.distributed as dist
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def gather_rows(t: torch.Tensor, interleaved: bool) -> torch.Tensor | None:
    """Every process's rows on rank 0 (None elsewhere), in dataset order: process r holds rows
    r, r + W, ... (``interleaved``) or one block after another."""
    import torch.distributed as dist
    rank, W = world()
    dev = _comm_device()
    n = torch.tensor([t.shape[0]], dtype=torch.int64, device=dev)
    sizes = [torch.zeros_like(n) for _ in range(W)]
    dist.all_gather(sizes, n)
    sizes = [int(s) for s in sizes]
    pad = torch.zeros((max(sizes), *t.shape[1:]), dtype=t.dtype, device=dev)
    pad[:t.shape[0]] = t.to(dev)
    if rank != 0:
        dist.gather(pad, dst=0)
        return None
    parts = [torch.empty_like(pad) for _ in range(W)]
    dist.gather(pad, parts, dst=0)
    parts = [p[:k].cpu() for p, k in zip(parts, sizes)]
    if not interleaved:
        return torch.cat(parts)
    out = torch.empty((sum(sizes), *t.shape[1:]), dtype=t.dtype)
    for r, p in enumerate(parts):
        out[r::W] = p
    return out
