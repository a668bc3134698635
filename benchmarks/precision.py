"""How precise is a LEG map? Every estimator and sampling scheme against the exact estimand.

The reference maps (``--references``, an ``.npz`` with ``NAME__input``, ``NAME__target``
and ``NAME__k{grid}__per_channel`` / ``__joint`` entries) hold, for real photos and
EfficientNet-Lite0, the expected cell-summed gradient of the top logit under LEG's own
noise (s = 0.09): the quantity every LEG estimator estimates. For each image and
sampling scheme this script runs one sampling pass at the largest budget, exactly as
``LEG(model).attribute(x, target, seed=SEED, ...)`` would, keeps the responses, and feeds
every prefix (the first ``n`` samples per channel: what a call with ``n_samples=n`` and
the same seed draws) to every estimator. It prints, per (scheme, estimator, budget),
the mean over images of

* ``rel``: relative L2 error of the channel-summed map, ``||est - ref|| / ||ref||``;
* ``corr``: Pearson correlation of the channel-summed maps;
* ``z-rms``: root mean square of ``(est - ref) / SE`` over cells and channels (1 for
  calibrated standard errors; the references' own Monte-Carlo error pushes it up a
  little); ``cover``: share of cells with ``|est - ref| <= 2 SE``;
* ``rse``: the relative standard error the call reports (``LEG.last_run``), next to the
  true relative error ``rel_c`` of the per-channel maps it predicts;
* ``zero`` and ``flat``: the share of cells exactly 0 and of neighbouring cells with
  equal values (LEG-TV's maps, rows ``ESTIMATOR+tvLAM`` with ``--tv-lams``, are
  piecewise constant).

    python benchmarks/precision.py --references PATH.npz --images dogcat,shark
    python benchmarks/precision.py --references PATH.npz --images all --budgets 250,500,1000,2000 \
        --schemes orthogonal --estimators ridge,ridge-white,ridge-evidence,least_squares,moment \
        --tv-lams 0.05,0.1,0.3 --gradient-budgets 332 --out docs/results/precision/orthogonal_all20

Estimators are registered names or the ridge variants of :data:`VARIANTS`
("ridge-evidence" is captum-leg 0.1's default estimator). CPU cost: one budget-``n`` run
costs ``3 n`` forward passes per image and scheme (about 3 minutes per image at
n = 2000 on two cores); a gradient budget ``n`` costs ``3 n`` forward and backward passes;
the defaults (two images, budgets up to 500) take a few minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import csv
import time
from pathlib import Path
from math import nan
from typing import Dict, List, Tuple

import numpy as np
import torch

from captum_leg import LEG
from captum_leg.estimators import (
    Accumulator,
    Estimate,
    Estimator,
    GroupContext,
    RidgeEstimator,
    resolve_estimator,
)
from captum_leg.estimators.tv import leg_tv
from captum_leg.models import load_efficientnet_lite0
from captum_leg.run import estimate_groups, relative_standard_error

#: Estimators by label: every registered name, and ridge variants (old and new).
VARIANTS = {
    "ridge-evidence": RidgeEstimator(penalty="evidence", envelope=False),  # captum-leg 0.1's default
    "ridge-white": RidgeEstimator(envelope=False),
}


def estimator(label: str) -> Estimator:
    return VARIANTS[label] if label in VARIANTS else resolve_estimator(label)


class _Recorder(Accumulator):
    """Keeps every unit's features and responses; estimates nothing."""

    def __init__(self, group, n_examples, centered, track_error):  # type: ignore[no-untyped-def]
        super().__init__(group, n_examples, centered, track_error)
        self.features: List[torch.Tensor] = []
        self.responses: List[torch.Tensor] = []

    def update(self, features: torch.Tensor, responses: torch.Tensor) -> None:
        self.features.append(features)
        self.responses.append(responses)
        self.units += features.shape[0]


class _Recording(Estimator):
    name = "record"

    def __init__(self) -> None:
        self.accumulators: List[_Recorder] = []

    def accumulator(self, group, n_examples, centered, track_error):  # type: ignore[no-untyped-def]
        acc = _Recorder(group, n_examples, centered, track_error)
        self.accumulators.append(acc)
        return acc

    def estimate(self, accumulators, contexts):  # type: ignore[no-untyped-def]
        return [Estimate(torch.zeros(a.n_examples, a.group.p, dtype=a.group.dtype)) for a in accumulators]


def record_run(model, x, target, grid, n, scheme, perturb, seed):  # type: ignore[no-untyped-def]
    """One sampling pass as ``attribute`` makes it; returns the call and per-group data."""
    from captum_leg.settings import LEGSettings

    leg = LEG(model)
    recording = _Recording()
    settings = LEGSettings(n_samples=n, grid_size=grid, sampling=scheme, perturb=perturb, seed=seed)
    call = leg._prepare(x, target, None, settings, None)
    call.sampling = dataclasses.replace(call.sampling, estimator=recording)
    t0 = time.perf_counter()
    leg._sample(call, track_error=False)
    seconds = time.perf_counter() - t0
    data = [(torch.cat(r.features), torch.cat(r.responses)) for r in recording.accumulators]
    return call, data, seconds


def evaluate(call, data, label: str, units: int, scheme: str, lams=()) -> Tuple[np.ndarray, np.ndarray, float, List[np.ndarray]]:  # type: ignore[no-untyped-def]
    """Per-channel maps and standard errors ``(C, k, k)`` from the first ``units`` units,
    and the LEG-TV maps fed by the estimate, one per lambda in ``lams``."""
    est = estimator(label)
    paired = scheme != "gaussian"
    accs, contexts = [], []
    for group, refs, (feats, resp) in zip(call.plan.groups, call.plan.members, data):
        acc = est.for_group(group).accumulator(group, 1, not paired, True)
        acc.update(feats[:units], resp[:units])
        accs.append(acc)
        contexts.append(GroupContext(group, tuple(r.input_index for r in refs),
                                     lambda f=feats: iter([f[:units]]), scheme == "orthogonal"))
    estimates = estimate_groups(est, accs, contexts)
    rse = float(relative_standard_error(estimates)[0])
    blocks = _maps(call, estimates, "coef")
    ses = [m[0].numpy() for m in _maps(call, estimates, "standard_error")]
    tv: List[np.ndarray] = []
    if lams:
        layout = call.plan.layouts[0]
        tv = [t[0].numpy() for t in leg_tv(blocks[0], layout.grid, layout.noise_levels, list(lams), "auto")]
    return blocks[0][0].numpy(), ses[0], rse, tv


def _maps(call, estimates, field):  # type: ignore[no-untyped-def]
    from captum_leg.attribution import _block_maps

    return _block_maps(call.plan, estimates, field)


def corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a.ravel() - a.mean()
    b = b.ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--references", help="reference .npz (see above)")
    ap.add_argument("--combine", nargs="+", metavar="CSV",
                    help="instead of running: merge results.csv files of runs made in parts "
                    "(e.g. images split across processes) into --out")
    ap.add_argument("--images", default="dogcat,shark", help="comma-separated names, or 'all'")
    ap.add_argument("--grid", type=int, default=14)
    ap.add_argument("--budgets", default="100,250,500", help="samples per channel, comma-separated")
    ap.add_argument("--schemes", default="orthogonal,antithetic")
    ap.add_argument("--estimators", default="ridge,ridge-evidence,moment",
                    help=f"registered names or variants {sorted(VARIANTS)}")
    ap.add_argument("--gradient-budgets", default="",
                    help="samples per channel for estimator='gradient' (autograd; forward+backward passes), comma-separated")
    ap.add_argument("--tv-lams", default="",
                    help="LEG-TV lambdas, comma-separated: each --tv-estimators map at each budget also feeds "
                    "LEG-TV (rows ESTIMATOR+tvLAM; columns zero: share of cells exactly 0, flat: share of "
                    "neighbouring cells with equal values)")
    ap.add_argument("--tv-estimators", default="ridge", help="estimators whose maps feed LEG-TV")
    ap.add_argument("--perturb", default="channel", choices=["channel", "joint"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="folder for results.csv and results.md")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for this run (e.g. 1 per process when several share the CPU)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)  # a script's own choice, not the library's
    if args.combine:
        rows = [_typed(r) for path in args.combine for r in csv.DictReader(open(path))]
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            write(Path(args.out), rows)
        print(summarise(rows))
        return
    if not args.references:
        ap.error("--references is required (or --combine)")

    refs = np.load(args.references)
    names = sorted({k.split("__")[0] for k in refs.files if "__input" in k})
    if args.images != "all":
        names = args.images.split(",")
    budgets = sorted(int(b) for b in args.budgets.split(","))
    tv_lams = [float(v) for v in args.tv_lams.split(",") if v]
    # channels_last: the same model, about a quarter faster on CPU.
    model = load_efficientnet_lite0().to(memory_format=torch.channels_last)
    ref_key = "per_channel" if args.perturb == "channel" else "joint"
    rows: List[Dict[str, object]] = []
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    for name in names:
        x = torch.from_numpy(refs[f"{name}__input"]).float()
        target = int(refs[f"{name}__target"])
        truth = refs[f"{name}__k{args.grid}__{ref_key}"]
        for scheme in args.schemes.split(","):
            paired = scheme != "gaussian"
            call, data, seconds = record_run(model, x, target, args.grid, budgets[-1], scheme, args.perturb, args.seed)
            for n in budgets:
                units = n // 2 if paired else n
                for est in args.estimators.split(","):
                    if units < estimator(est).min_units(call.plan.groups[0], not paired):
                        continue  # least squares needs more samples than cells
                    lams = tv_lams if est in args.tv_estimators.split(",") else []
                    maps, ses, rse, tv = evaluate(call, data, est, units, scheme, lams)
                    common = dict(image=name, scheme=scheme, n=n, forward_passes=len(data) * n + (0 if paired else 1),
                                  seconds=seconds * n / budgets[-1])
                    z = (maps - truth) / ses
                    rows.append(dict(
                        common, estimator=est, **accuracy(maps, truth), rse=rse, z_rms=float(np.sqrt(np.mean(z**2))),
                        cover=float(np.mean(np.abs(maps - truth) <= 2 * ses))))
                    for lam, tv_map in zip(lams, tv):  # no standard errors for LEG-TV
                        rows.append(dict(common, estimator=f"{est}+tv{lam:g}", **accuracy(tv_map, truth),
                                         rse=nan, z_rms=nan, cover=nan))
            print(f"{name} {scheme}: {seconds:.0f} s for n = {budgets[-1]}", flush=True)
        for n in [int(b) for b in args.gradient_budgets.split(",") if b]:
            rows.append(gradient_row(model, x, target, truth, name, n, args))
        if out:  # after every image, so a long run can be read (or resumed by hand) midway
            write(out, rows)
    print(summarise(rows))


def gradient_row(model, x, target, truth, name, n, args) -> Dict[str, object]:  # type: ignore[no-untyped-def]
    """The gradient path (autograd) at ``n`` samples per channel, orthogonal pairs."""
    leg = LEG(model)
    t0 = time.perf_counter()
    with torch.enable_grad():
        attr, se = leg.attribute(x, target=target, estimator="gradient", n_samples=n, grid_size=args.grid,
                                 perturb=args.perturb, seed=args.seed, return_standard_error=True)
    seconds = time.perf_counter() - t0
    k = args.grid
    r = x.shape[-1] // k  # the references' grids divide 224
    maps = attr[0].double().reshape(-1, k, r, k, r).sum((2, 4)).numpy()
    ses = (se[0].double().reshape(-1, k, r, k, r)[:, :, 0, :, 0] * r * r).numpy()
    z = (maps - truth) / ses
    return dict(
        image=name, scheme="orthogonal", estimator="gradient", n=n,
        forward_passes=leg.last_run.forward_passes,  # as many backward passes
        **accuracy(maps, truth), rse=float(leg.last_run.relative_standard_error[0]), z_rms=float(np.sqrt(np.mean(z**2))),
        cover=float(np.mean(np.abs(z) <= 2)), seconds=seconds,
    )


def accuracy(maps: np.ndarray, truth: np.ndarray) -> Dict[str, float]:
    """Errors of per-channel maps ``(C, k, k)``; ``zero``: the share of cells exactly 0."""
    return dict(
        rel=float(np.linalg.norm(maps.sum(0) - truth.sum(0)) / np.linalg.norm(truth.sum(0))),
        corr=corr(maps.sum(0), truth.sum(0)),
        rel_c=float(np.linalg.norm(maps - truth) / np.linalg.norm(truth)),
        zero=float(np.mean(maps == 0)),
        flat=flat_share(maps),
    )


def flat_share(maps: np.ndarray) -> float:
    """Share of neighbouring cells (both axes, every channel) with equal values: how
    piecewise constant a map is (LEG-TV's sparsity is in the differences)."""
    tol = 1e-6 * float(np.abs(maps).max())
    diffs = [np.abs(np.diff(maps, axis=a)) <= tol for a in (1, 2)]
    return float(sum(d.sum() for d in diffs) / sum(d.size for d in diffs))


def _typed(row: Dict[str, str]) -> Dict[str, object]:
    def number(v: str) -> object:
        try:
            return int(v)
        except ValueError:
            return float(v) if v else nan  # files written before a column existed

    return {k: (v if k in ("image", "scheme", "estimator") else number(v)) for k, v in row.items()}


def write(out: Path, rows: List[Dict[str, object]]) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(rows)
    (out / "results.md").write_text(summarise(rows) + "\n")


def summarise(rows: List[Dict[str, object]]) -> str:
    keys = sorted({(r["scheme"], r["estimator"], r["n"]) for r in rows}, key=lambda k: (k[0], k[2], k[1]))
    lines = [
        "| scheme | estimator | n per channel | forward passes | rel | corr | min corr | z-rms | cover | rse | rel_c | zero | flat | images |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scheme, est, n in keys:
        sel = [r for r in rows if (r["scheme"], r["estimator"], r["n"]) == (scheme, est, n)]
        m = {k: _mean_of_known([r.get(k, nan) for r in sel]) for k in ("rel", "corr", "z_rms", "cover", "rse", "rel_c", "zero", "flat")}
        lines.append(
            f"| {scheme} | {est} | {n} | {sel[0]['forward_passes']} | {m['rel']:.3f} | {m['corr']:.3f} | "
            f"{min(float(r['corr']) for r in sel):.3f} | {_blank(m['z_rms'], '.2f')} | {_blank(m['cover'], '.3f')} | "
            f"{_blank(m['rse'], '.3f')} | {m['rel_c']:.3f} | {_blank(m['zero'], '.2f')} | {_blank(m['flat'], '.2f')} | {len(sel)} |"
        )
    return "\n".join(lines)


def _mean_of_known(values: List[object]) -> float:
    """Mean over the photos that have the column (files written before it existed lack it)."""
    known = [float(v) for v in values if not np.isnan(float(v))]  # type: ignore[arg-type]
    return float(np.mean(known)) if known else nan


def _blank(value: float, fmt: str) -> str:
    """A table cell: blank where the quantity does not exist (LEG-TV's SE, old files' zero share)."""
    return "" if np.isnan(value) else format(value, fmt)


if __name__ == "__main__":
    main()
