"""What the ``captum-leg`` commands leave on disk, and how a rerun finds it again.

Every file is written beside its target and renamed into place, so an interrupted run
(Ctrl-C included) never leaves a file that looks finished, nor a stray temporary file.
``explain`` stores each map's settings in ``NAME.json`` beside its ``.npy`` and ``.png``
and skips an image whose outputs match the settings of the run (:func:`stale`);
``evaluate`` caches each method's maps in a folder named by a hash of its settings
(:class:`MapCache`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: ``save_figure(fig, path, dpi=..., tight=...)``: how the commands write their figures.
FigureSaver = Callable[..., None]


def atomic_save(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write ``path`` with ``write(binary file)``, all or nothing."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, all or nothing."""
    atomic_save(path, lambda fh: fh.write(data))


def save_figure(fig: Figure, path: Path, dpi: int = 100, tight: bool = True) -> None:
    """Write ``fig`` as a PNG, all or nothing."""
    # fig is a matplotlib.figure.Figure outside pyplot: nothing to close, no backend chosen
    kw: Dict[str, Any] = {"bbox_inches": "tight"} if tight else {}
    atomic_save(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi, **kw))


def write_table(path_csv: Path, path_md: Path, rows: Sequence[Dict[str, Any]], header_md: str = "") -> None:
    """``rows`` as CSV and as a Markdown table (floats to 3 decimals) after ``header_md``."""
    keys = list(rows[0])
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    atomic_write(path_csv, buf.getvalue().encode())

    def cell(v: Any) -> str:  # a bare "|" would end the cell: "LEG |rho|" is written "LEG \|rho\|"
        return (f"{v:.3f}" if isinstance(v, float) else str(v)).replace("|", "\\|")

    lines = [header_md] if header_md else []
    lines += ["| " + " | ".join(cell(k) for k in keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r[k]) for k in keys) + " |" for r in rows]
    atomic_write(path_md, ("\n".join(lines) + "\n").encode())


def file_sha1(path: Path) -> str:
    """Hex SHA-1 of the file's bytes (raises ``OSError`` if it cannot be read)."""
    return hashlib.sha1(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------
# explain: a map, its picture and its settings per image
# ---------------------------------------------------------------------------------------
_MAP_SET = (".npy", ".png")  # written before NAME.json, which marks the set complete


def stale(out: Path, name: str, settings: Dict[str, Any]) -> Optional[str]:
    """``None`` if ``name``'s outputs in ``out`` are complete and made with ``settings``,
    else why not (``""``: no outputs yet)."""
    if not all((out / f"{name}{suffix}").exists() for suffix in _MAP_SET):
        return ""
    try:
        stored = json.loads((out / f"{name}.json").read_text())["settings"]
    except FileNotFoundError:
        return "no settings stored with it"
    except (OSError, ValueError, KeyError, TypeError):
        return "its settings file is unreadable"
    if stored == settings:
        return None
    return f"settings changed ({', '.join(_changes(stored, settings))})"


def _changes(stored: Dict[str, Any], settings: Dict[str, Any]) -> List[str]:
    keys = list(settings) + [k for k in stored if k not in settings]
    changes = []
    for k in keys:
        old, new = stored.get(k), settings.get(k)
        if old != new:
            changes.append("image file changed" if k == "image_sha1" else f"{k} {json.dumps(old)} -> {json.dumps(new)}")
    return changes


def write_map_set(out: Path, name: str, arr: np.ndarray, fig: Figure, settings: Dict[str, Any],
                  save_figure: FigureSaver = save_figure) -> None:
    """``out/NAME.npy`` (``arr``), ``NAME.png`` (``fig``) and ``NAME.json`` (``settings``),
    all three or none."""
    # NAME.json is written last and marks a complete set: drop the old one first, so an
    # interrupted rewrite is never taken for finished, and remove a half-written set
    out.mkdir(parents=True, exist_ok=True)  # only now: a run that explains nothing leaves no folder
    meta = out / f"{name}.json"
    meta.unlink(missing_ok=True)
    try:
        atomic_save(out / f"{name}.npy", lambda fh: np.save(fh, arr))
        save_figure(fig, out / f"{name}.png")
        atomic_write(meta, (json.dumps({"settings": settings}, indent=1) + "\n").encode())
    except BaseException:
        for suffix in _MAP_SET:
            (out / f"{name}{suffix}").unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------
# evaluate: cached maps per method
# ---------------------------------------------------------------------------------------
class MapCache:
    """One method's maps made with one set of settings: ``root/METHOD_HASH/NAME.npy``.

    ``HASH`` is the start of the SHA-1 of ``key`` (every setting that changes the maps,
    also written to ``settings.txt`` beside them). The folder appears with its first map,
    so a run that makes none leaves none.
    """

    def __init__(self, root: Path, method: str, key: str) -> None:
        self.folder = root / f"{method}_{hashlib.sha1(key.encode()).hexdigest()[:10]}"
        self.key = key

    def load(self, names: Sequence[str], device: torch.device) -> Optional[List[Tensor]]:
        """The maps of ``names`` on ``device`` if all are cached, else None."""
        paths = [self.folder / f"{n}.npy" for n in names]
        if not all(p.exists() for p in paths):
            return None
        return [torch.from_numpy(np.load(p)).to(device) for p in paths]

    def store(self, name: str, attribution: Tensor) -> None:
        """Add ``name``'s map."""
        if not self.folder.exists():
            self.folder.mkdir(parents=True)
            atomic_write(self.folder / "settings.txt", (self.key + "\n").encode())
        arr = attribution.cpu().numpy()
        atomic_save(self.folder / f"{name}.npy", lambda fh: np.save(fh, arr))
