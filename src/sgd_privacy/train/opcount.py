"""Counting what a training step asks of the device: aten ops (kernel launches on a GPU), host-device
synchronisations and tensors made from host values, so that throughput regressions show on the CPU.

On a GPU each aten op is (about) one kernel launch; an op that reads a device value on the host
(`.item()`, `bool(tensor)`, `nonzero`, boolean-mask indexing) waits for the device; a tensor made
from a Python number or host array (`torch.tensor(3)`, `torch.as_tensor(step, device=...)`) is a
blocking host-to-device copy. A `TorchDispatchMode` sees every op of the calling thread, on any device.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# ops that make the host wait for a device result
SYNC_OPS = frozenset(
    {"_local_scalar_dense", "nonzero", "masked_select", "_unique2", "unique_dim", "unique_consecutive", "equal"}
)
# ops that turn a host value into a tensor (a host-to-device copy when the tensor lives on a GPU)
FROM_HOST_OPS = frozenset({"lift_fresh", "lift_fresh_copy", "scalar_tensor"})
COPY_OPS = frozenset({"_to_copy", "copy_"})


def _devices(values: Any) -> set[str]:
    """Device types of the tensors among an op's arguments (one level of lists)."""
    out = set()
    for v in values:
        if isinstance(v, torch.Tensor):
            out.add(v.device.type)
        elif isinstance(v, list | tuple):
            out |= {t.device.type for t in v if isinstance(t, torch.Tensor)}
    return out


@dataclass
class OpCounts(TorchDispatchMode):
    """Counts, in the `with` block: ops by name, syncs, host-value tensors and cross-device copies."""

    ops: Counter[str] = field(default_factory=Counter)
    syncs: int = 0
    from_host: int = 0
    transfers: int = 0

    def __post_init__(self) -> None:
        """Initialise the dispatch mode's own state."""
        super().__init__()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        """Count the op, then run it."""
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        self.ops[name] += 1
        self.syncs += name in SYNC_OPS
        self.from_host += name in FROM_HOST_OPS
        out = func(*args, **kwargs)
        if name in COPY_OPS:
            devices = _devices(args) | _devices([out])
            if "device" in kwargs and kwargs["device"] is not None:
                devices.add(torch.device(kwargs["device"]).type)
            self.transfers += len(devices) > 1
        return out

    @property
    def total(self) -> int:
        """Every op counted."""
        return sum(self.ops.values())

    def summary(self) -> dict[str, int]:
        """Totals: ops, syncs, host-value tensors and cross-device copies."""
        return {"ops": self.total, "syncs": self.syncs, "from_host": self.from_host, "transfers": self.transfers}
