"""What the ``captum-leg`` commands print while they work: log lines and progress bars."""

from __future__ import annotations

from typing import Iterable, List, Sequence, TypeVar, cast

Item = TypeVar("Item")


def log(msg: str) -> None:
    """One line on stdout, flushed at once (batch jobs are followed in log files)."""
    print(msg, flush=True)


def progress(items: Sequence[Item], desc: str, enabled: bool) -> Iterable[Item]:
    """``items`` behind Captum's progress bar, or as they are when ``enabled`` is false."""
    if not enabled:
        return items
    from captum._utils.progress import progress as captum_progress

    return cast(Iterable[Item], captum_progress(items, desc=desc, total=len(items)))


def batched(items: Sequence[Item], size: int) -> List[Sequence[Item]]:
    """``items`` in consecutive batches of ``size`` (the last one may be shorter)."""
    return [items[i : i + size] for i in range(0, len(items), size)]
