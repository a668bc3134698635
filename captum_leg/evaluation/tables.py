"""Tables of a run's records: per photo, summaries over photos, timings; CSV and markdown."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from captum_leg.evaluation.statistics import summarize


def flat_rows(records: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """One row per (photo, map): the record's fields and the map's scalar metrics."""
    rows = []
    for r in records:
        base = {k: r[k] for k in ("call", "target", "cost", "forward_equivalents", "map_seconds") if k in r}
        for name, values in r["maps"].items():
            scalars = {k: v for k, v in values.items() if isinstance(v, (int, float))}
            rows.append(dict(photo=r["photo"], method=name, **base, **scalars))
    return rows


def summary_rows(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str], *, level: float = 0.95,
                 seed: int = 0) -> List[Dict[str, Any]]:
    """Per method (in order of appearance) and metric: ``n, mean, median, low, high`` over photos."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    out = []
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        for metric in metrics:
            values = [r[metric] for r in mine if metric in r]
            out.append(dict(method=method, metric=metric, **summarize(values, level, seed=seed)))
    return out


def wide_rows(summary: Sequence[Mapping[str, Any]], metrics: Sequence[str],
              costs: Optional[Mapping[str, Any]] = None) -> List[Dict[str, Any]]:
    """Methods x metrics, each cell ``mean (median) [low, high]``."""
    cells = {(s["method"], s["metric"]): s for s in summary}
    out = []
    for method in dict.fromkeys(s["method"] for s in summary):
        row: Dict[str, Any] = {"method": method}
        if costs is not None:
            row["cost"] = costs.get(method, "")
        for metric in metrics:
            s = cells.get((method, metric))
            row[metric] = "" if s is None else _cell(s)
        out.append(row)
    return out


def paired_rows(rows: Sequence[Mapping[str, Any]], reference: str, metrics: Sequence[str],
                higher_is_better: Sequence[str] = (), *, level: float = 0.95, seed: int = 0) -> List[Dict[str, Any]]:
    """``reference`` against every other method, photo by photo.

    For each method and metric, over the photos both have: the mean paired difference
    ``reference - method`` with a bootstrap interval of that mean, and how many photos the
    reference wins, ties and loses (``higher_is_better`` names the metrics where larger
    wins; smaller wins elsewhere). Paired differences cancel what photos share (a hard
    photo is hard for every method), so they separate methods that overlapping
    per-method intervals cannot.
    """
    values = {(r["photo"], r["method"], m): r[m] for r in rows for m in metrics if m in r}
    if not any(k[1] == reference for k in values):
        raise ValueError(f"reference: no rows of method {reference!r}")
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        if method == reference:
            continue
        for metric in metrics:
            photos = [p for (p, m, k) in values if m == method and k == metric and (p, reference, metric) in values]
            diff = np.array([values[(p, reference, metric)] - values[(p, method, metric)] for p in photos], float)
            better = diff > 0 if metric in higher_is_better else diff < 0
            out.append(dict(method=method, metric=metric, **summarize(diff, level, seed=seed),
                            wins=int(better.sum()), ties=int((diff == 0).sum()),
                            losses=int(diff.size - better.sum() - (diff == 0).sum())))
    return out


def wide_paired_rows(paired: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> List[Dict[str, Any]]:
    """Methods x metrics, each cell ``mean difference [low, high] wins/ties/losses``."""
    cells = {(s["method"], s["metric"]): s for s in paired}
    out = []
    for method in dict.fromkeys(s["method"] for s in paired):
        row: Dict[str, Any] = {"against": method}
        for metric in metrics:
            s = cells[(method, metric)]
            row[metric] = "" if s["n"] == 0 else (
                f"{s['mean']:+.3f} [{s['low']:+.3f}, {s['high']:+.3f}] {s['wins']}/{s['ties']}/{s['losses']}")
        out.append(row)
    return out


def _cell(s: Mapping[str, Any]) -> str:
    if s["n"] == 0:
        return ""
    interval = "" if math.isnan(s["low"]) else f" [{s['low']:.3f}, {s['high']:.3f}]"
    return f"{s['mean']:.3f} ({s['median']:.3f}){interval}"


def timing_rows(records: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Per method call: stated cost, measured forward-equivalents and seconds (means over photos)."""
    out = []
    for call in dict.fromkeys(r["call"] for r in records):
        mine = [r for r in records if r["call"] == call]
        out.append(dict(
            method=call, photos=len(mine), cost=mine[0]["cost"],
            measured=float(np.mean([r["forward_equivalents"] for r in mine])),
            map_seconds=float(np.mean([r["map_seconds"] for r in mine])),
            metric_seconds=float(np.mean([r["metric_seconds"] for r in mine])),
            total_seconds=float(sum(r["map_seconds"] + r["metric_seconds"] for r in mine)),
        ))
    return out


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows as CSV (columns: every key, in order of first appearance)."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Optional[Sequence[str]] = None) -> str:
    """Rows as a markdown table; floats with 3 decimals, ``|`` escaped."""
    if not rows:
        return ""
    cols = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))

    def fmt(v: Any) -> str:
        text = f"{v:.3f}" if isinstance(v, float) else str(v)
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"
