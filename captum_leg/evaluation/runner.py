"""Evaluating methods photo by photo, resumably: counted forward passes, timings, records.

:func:`run_methods` computes every method's maps of every photo and their metrics, and
appends one record per (photo, method) to a :class:`RecordStore` as soon as it is done;
a run that stops (or is stopped) continues where it was on the next call, and a method
whose settings changed is recomputed. A :class:`ForwardCounter` around the model
measures what each method spends: images forwarded, and images backpropagated through
the model's output (each counts 2 forward-equivalents).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from captum_leg.evaluation.masking import MASKS, PixelSpace
from captum_leg.evaluation.method_spec import DEFAULT_BATCH, MethodSpec
from captum_leg.evaluation.metrics import (
    DEFAULT_CURVE_POINTS,
    DEFAULT_KEY_FRACTIONS,
    deletion_curve,
    insertion_curve,
    key_size,
    sensitivity_curve,
)

#: ``metrics(model, inputs, target, attributions) -> {name: value}`` for one photo.
Metrics = Callable[[nn.Module, Tensor, Tensor, Tensor], Dict[str, Any]]


class ForwardCounter(nn.Module):
    """A model that counts what passes through it.

    Attributes:
        model: the wrapped model.
        forward_rows: images forwarded since the last :meth:`reset`.
        backward_rows: images whose output a backward pass went through.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.forward_rows = 0
        self.backward_rows = 0

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        out = self.model(x, *args, **kwargs)
        rows = int(x.shape[0])
        self.forward_rows += rows
        if out.requires_grad:
            out.register_hook(lambda grad: self._backward(rows))
        return out

    def _backward(self, rows: int) -> None:
        self.backward_rows += rows

    def reset(self) -> None:
        """Start counting from zero."""
        self.forward_rows = self.backward_rows = 0

    @property
    def forward_equivalents(self) -> int:
        """Forward passes plus two per backward pass."""
        return self.forward_rows + 2 * self.backward_rows


def with_softmax(model: nn.Module) -> nn.Module:
    """The model followed by a softmax over its last dimension (maps of the probability)."""
    return nn.Sequential(model, nn.Softmax(dim=-1))


class RecordStore:
    """Records of a run as JSON lines in ``folder/records.jsonl``, one per (photo, method).

    Each record is written and flushed to disk as it completes, so a stopped run loses
    at most the record in progress (a torn last line is ignored). ``folder/run.json``
    holds the run's settings; a store of other settings is refused rather than mixed.

    Args:
        folder: where the run's files are (created if missing).
        settings: the run's settings (JSON-serialisable), compared with the stored ones.
    """

    def __init__(self, folder: Path, settings: Mapping[str, Any]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / "records.jsonl"
        header = self.folder / "run.json"
        wanted = json.loads(json.dumps(settings, sort_keys=True, default=repr))
        if header.exists():
            stored = json.loads(header.read_text())
            if stored != wanted:
                diff = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
                raise ValueError(
                    f"{self.folder}: holds a run with other settings ({', '.join(diff)}); use another folder"
                )
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            header.write_text(json.dumps(wanted, indent=1, sort_keys=True) + "\n")

    def records(self) -> List[Dict[str, Any]]:
        """Every complete record, in the order written."""
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a record torn by a stop: recomputed
                continue
        return out

    def done(self) -> Dict[Tuple[str, str], str]:
        """``(photo, method) -> settings`` of every complete record."""
        return {(r["photo"], r["call"]): r["settings"] for r in self.records()}

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one record and flush it to disk."""
        line = (json.dumps(record, default=float) + "\n").encode("utf-8")
        with open(self.path, "a+b") as fh:
            if fh.seek(0, os.SEEK_END) > 0:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":  # after a torn record: start a new line
                    line = b"\n" + line
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


def settings_key(spec: MethodSpec) -> str:
    """The settings of a spec as canonical JSON (a record is valid for these only)."""
    return json.dumps({"cost": spec.cost, **spec.settings}, sort_keys=True, default=repr)


@dataclass(frozen=True)
class PaperMetrics:
    """The paper's and RISE's metrics of one map (see :mod:`captum_leg.evaluation.metrics`).

    Attributes:
        masks: key-size masks.
        key_fractions: fractions tried for the key size.
        deletion_mask: what deleted pixels become.
        insertion_start: the image pixels are inserted into.
        curve_points: points of the deletion and insertion curves.
        sensitivity_mask, sensitivity_fractions: the sensitivity curve's mask and fractions.
        output_is_probability: the model returns probabilities (else logits: the
            sensitivity curve applies a softmax; deletion and insertion track logits).
        pixel_space, batch_size, seed: see :func:`captum_leg.evaluation.key_size`.
    """

    masks: Tuple[str, ...] = MASKS
    key_fractions: Tuple[float, ...] = DEFAULT_KEY_FRACTIONS
    deletion_mask: str = "black"
    insertion_start: str = "blur"
    curve_points: int = DEFAULT_CURVE_POINTS
    sensitivity_mask: str = "mean"
    sensitivity_fractions: Tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(11))
    output_is_probability: bool = True
    pixel_space: PixelSpace = "imagenet"
    batch_size: int = DEFAULT_BATCH
    seed: int = 0

    def __call__(self, model: nn.Module, x: Tensor, target: Tensor, a: Tensor) -> Dict[str, Any]:
        kw: Dict[str, Any] = dict(pixel_space=self.pixel_space, batch_size=self.batch_size, seed=self.seed)
        out: Dict[str, Any] = {
            f"key_{m}": round(float(key_size(model, x, a, target, m, self.key_fractions, **kw)[0]), 6)
            for m in self.masks
        }
        d = deletion_curve(model, x, a, target, self.deletion_mask, self.curve_points, **kw)
        i = insertion_curve(model, x, a, target, self.insertion_start, self.curve_points, **kw)
        s = sensitivity_curve(model, x, a, target, self.sensitivity_mask, self.sensitivity_fractions,
                              apply_softmax=not self.output_is_probability, **kw)
        out.update(deletion_auc=float(d.auc[0]), insertion_auc=float(i.auc[0]), deletion=d.response[0].tolist(),
                   insertion=i.response[0].tolist(), sensitivity=s.probability[0].tolist())
        return out

    def settings(self) -> Dict[str, Any]:
        """The fields, for a run's settings."""
        return asdict(self)


@dataclass
class Photo:
    """A photo to explain: its name and a loader of its ``(1, C, H, W)`` tensor."""

    name: str
    load: Callable[[], Tensor] = field(repr=False)


def _evaluate_call(counter: ForwardCounter, spec: MethodSpec, x: Tensor, target: Tensor, metrics: Metrics,
                   seed: Optional[int]) -> Dict[str, Any]:
    counter.reset()
    t0 = time.perf_counter()
    maps = spec.explain(x, target, seed)
    t1 = time.perf_counter()
    measured = dict(forward_rows=counter.forward_rows, backward_rows=counter.backward_rows,
                    forward_equivalents=counter.forward_equivalents)
    values = {name: metrics(counter, x, target, a.detach()) for name, a in maps.items()}
    return dict(cost=spec.cost, **measured, metric_forward_rows=counter.forward_rows - measured["forward_rows"],
                map_seconds=t1 - t0, metric_seconds=time.perf_counter() - t1, maps=values)


def run_methods(
    photos: Iterable[Photo],
    specs: Mapping[str, MethodSpec],
    counter: ForwardCounter,
    metrics: Metrics,
    store: RecordStore,
    *,
    seed: Optional[int] = 0,
    log: Callable[[str], None] = lambda message: None,
) -> int:
    """Compute and record every method's maps and metrics on every photo not yet done.

    Args:
        photos: the photos; each is loaded only when a method still has to run on it.
        specs: method name -> spec built on ``counter`` (so its passes are counted).
        counter: the counting model the specs use; metrics run on it too, uncounted.
        metrics: ``metrics(model, x, target, map) -> values`` (e.g. :class:`PaperMetrics`).
        store: where records go (and which are done).
        seed: the methods' seed.
        log: called with a line per record.

    Returns:
        The number of records written by this call.
    """
    done, written = store.done(), 0
    for photo in photos:
        todo = [n for n, s in specs.items() if done.get((photo.name, n)) != settings_key(s)]
        if not todo:
            continue
        x = photo.load()
        with torch.no_grad():
            target = counter(x).argmax(-1)
        for name in todo:
            record = _evaluate_call(counter, specs[name], x, target, metrics, seed)
            store.append(dict(photo=photo.name, call=name, settings=settings_key(specs[name]),
                              target=int(target[0]), **record))
            written += 1
            log(f"{photo.name} {name}: {record['map_seconds']:.1f} s map, {record['metric_seconds']:.1f} s metrics, "
                f"{record['forward_equivalents']} forward-equivalents (stated {record['cost']})")
    return written


def current_records(store: RecordStore, specs: Mapping[str, MethodSpec],
                    photos: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    """The latest record of every (photo, method) whose settings match ``specs``."""
    latest: Dict[Tuple[str, str], Dict[str, Any]] = {}
    for r in store.records():
        spec = specs.get(r["call"])
        if spec is not None and r["settings"] == settings_key(spec) and (photos is None or r["photo"] in photos):
            latest[(r["photo"], r["call"])] = r
    return list(latest.values())


def numpy_curves(records: Sequence[Mapping[str, Any]], key: str) -> Dict[str, np.ndarray]:
    """Map name -> ``(photos, points)`` array of the curve ``key`` over ``records``."""
    rows: Dict[str, List[List[float]]] = {}
    for r in records:
        for name, values in r["maps"].items():
            rows.setdefault(name, []).append(values[key])
    return {name: np.asarray(v, dtype=float) for name, v in rows.items()}
