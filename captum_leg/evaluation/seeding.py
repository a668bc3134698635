"""Seeded runs of code that draws from torch's global generators, leaving them as found.

Captum's Lime, KernelShap and NoiseTunnel and ``nn.Module.reset_parameters`` take no
generator: they draw from the global ones. :func:`seeded_global_rng` runs such code
from a seed and restores every global generator afterwards, the CPU one and each
initialised CUDA device's. ``torch.manual_seed`` is avoided on purpose: it seeds every
CUDA generator too (``fork_rng(devices=[])`` restores only the CPU one), and before CUDA
is initialised it queues that seeding, which would change the caller's CUDA generators
the first time they use CUDA.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch


@contextlib.contextmanager
def seeded_global_rng(seed: Optional[int]) -> Iterator[None]:
    """Seed torch's global generators for the block, and restore them after it.

    Args:
        seed: the seed of every global generator inside the block; None seeds them from
            fresh entropy (a new draw each time, as an unseeded call would make).
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    generators = [torch.random.default_generator] + [torch.cuda.default_generators[i] for i in devices]
    with torch.random.fork_rng(devices=devices):
        for gen in generators:
            if seed is None:
                gen.seed()
            else:
                gen.manual_seed(int(seed))
        yield
