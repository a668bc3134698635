"""Running ``captum-leg`` under torchrun: this process's share of the images and its device.

torchrun starts one process per GPU and sets ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK``; without it the process is alone (rank 0 of 1). The split is static:
every process lists the same images in the same (sorted) order and takes every
``world``-th, so no process needs to talk to another.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence, Tuple, TypeVar

import torch

from captum_leg.cli.checks import UsageError

Item = TypeVar("Item")


@dataclass(frozen=True)
class Shard:
    """This process's place among the ``world`` processes of a run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "Shard":
        """The shard torchrun's variables describe (rank 0 of 1 without them).

        Raises:
            SystemExit: ``RANK`` outside ``WORLD_SIZE``.
        """
        env = os.environ if environ is None else environ
        rank = int(env.get("RANK", "0"))
        world = int(env.get("WORLD_SIZE", "1"))
        local = int(env.get("LOCAL_RANK", str(rank)))
        if not 0 <= rank < world:
            raise SystemExit(f"captum-leg: error: RANK={rank} outside WORLD_SIZE={world}")
        return cls(rank, world, local)

    @property
    def tag(self) -> str:
        """Prefix of this process's log lines (empty when it runs alone)."""
        return f"[rank {self.rank}/{self.world}] " if self.world > 1 else ""

    def take(self, items: Sequence[Item]) -> List[Item]:
        """This process's items: every ``world``-th, starting at its rank."""
        return list(items[self.rank :: self.world])


def pick_device(requested: Optional[str], local_rank: int = 0) -> torch.device:
    """``--device``, else the process's GPU (``LOCAL_RANK`` modulo the GPUs), else the CPU.

    Raises:
        UsageError: ``requested`` is not a device, or is CUDA where there is none.
    """
    if requested:
        try:
            dev = torch.device(requested)
        except (RuntimeError, ValueError) as err:
            raise UsageError("--device", str(err).splitlines()[0])
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise UsageError("--device", f"{requested}: CUDA is not available")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def device_and_shard(requested: Optional[str]) -> Tuple[torch.device, Shard]:
    """This process's shard (from torchrun's environment) and device (from ``--device``)."""
    shard = Shard.from_env()
    return pick_device(requested, shard.local_rank), shard
