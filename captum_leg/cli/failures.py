"""Per-file failures of the ``captum-leg`` batch commands (``explain``, ``evaluate``).

One bad file must not stop a batch of thousands: an image that cannot be read, or that
the model (or a method) fails on, costs only itself. Each is reported on one stderr line
naming the file and the reason, counted for the summary, and makes the exit status 1.
A model that fails on every image it is given is broken, not the images: the run stops
with one clear error instead of a line per file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple, TypeVar

#: The run stops when the model has failed on this many images and explained none
#: (or on all of them, when there are fewer).
BROKEN_MODEL_FAILURES = 5

Item = TypeVar("Item")
Result = TypeVar("Result")
#: An item of a batch command: a tuple whose first element is the image file.
FileItem = TypeVar("FileItem", bound=Tuple[Any, ...])


class FileFailures:
    """The files a batch command skipped, reported as they happen.

    Args:
        tag: prefix of each line (the process, under torchrun).
        is_fatal: whether an exception is an error of the whole run (a bad option
            value), raised rather than counted against one file.
    """

    def __init__(self, tag: str = "", is_fatal: Callable[[Exception], bool] = lambda err: False) -> None:
        self.tag = tag
        self.is_fatal = is_fatal
        self.unreadable = 0
        self.failed = 0
        self.first_error: Optional[str] = None

    def __len__(self) -> int:
        return self.unreadable + self.failed

    def _report(self, path: Path, what: str, err: BaseException) -> str:
        reason = f"{type(err).__name__}: " + " ".join(str(err).split())
        print(f"captum-leg: {self.tag}{path}: skipped, {what}: {reason}", file=sys.stderr, flush=True)
        return reason

    def cannot_read(self, path: Path, err: BaseException) -> None:
        self.unreadable += 1
        self._report(path, "cannot read the image", err)

    def model_failed(self, path: Path, err: BaseException, what: str = "the model") -> None:
        self.failed += 1
        reason = self._report(path, f"{what} failed on it", err)
        if self.first_error is None:
            self.first_error = f"{path}: {reason}"

    def stop_if_broken(self, succeeded: int, remaining: int, what: str = "the model") -> None:
        """Stop the run (``SystemExit``, status 1) when ``what`` failed on every image so
        far, and that is all of them or :data:`BROKEN_MODEL_FAILURES` of them."""
        if succeeded or not self.failed or (remaining and self.failed < BROKEN_MODEL_FAILURES):
            return
        which = f"all {self.failed} images" if not remaining else f"each of the first {self.failed} images"
        raise SystemExit(
            f"captum-leg: error: {what} failed on {which} it was given and succeeded on none, "
            f"so the run stops; the first error: {self.first_error}"
        )

    @property
    def exit_status(self) -> int:
        """The command's exit status: 1 when any file failed, else 0."""
        return 1 if self else 0

    def each_alone(self, items: Sequence[FileItem], run: Callable[[Sequence[FileItem]], Sequence[Result]],
                   what: str = "the model") -> List[Tuple[FileItem, Result]]:
        """:func:`each_alone_on_failure` on ``(file, ...)`` items: an item ``what`` fails
        on is reported by its file and counted."""
        return each_alone_on_failure(items, run, lambda item, err: self.model_failed(item[0], err, what), self.is_fatal)

    def summary(self) -> str:
        """``""``, or what failed, to append to the command's last log line."""
        if not self:
            return ""
        return (f"; {len(self)} file(s) failed and were skipped ({self.unreadable} unreadable, "
                f"{self.failed} failed when explained), listed above")


def each_alone_on_failure(
    items: Sequence[Item],
    run: Callable[[Sequence[Item]], Sequence[Result]],
    on_failure: Callable[[Item, Exception], None],
    is_fatal: Callable[[Exception], bool],
) -> List[Tuple[Item, Result]]:
    """``run`` on the whole batch; if it raises, on each item alone, so that only the
    items it fails on are lost (``on_failure`` reports each). An exception for which
    ``is_fatal`` is true (a bad option value, not a bad file) is raised instead."""
    if not items:
        return []
    try:
        return list(zip(items, run(items)))
    except Exception as err:
        if is_fatal(err):
            raise
        if len(items) == 1:
            on_failure(items[0], err)
            return []
    done: List[Tuple[Item, Result]] = []
    for item in items:
        try:
            done.extend(zip([item], run([item])))
        except Exception as err:
            if is_fatal(err):
                raise
            on_failure(item, err)
    return done
