"""The LEG paper's evaluation at equal forward-pass budgets: LEG against Captum's methods.

For each photo (shorter side to 224 with antialiasing, centre crop, ImageNet
normalisation: :func:`captum_leg.models.preprocess`) EfficientNet-Lite0 explains its top
class. Every method's map is computed at the budget (forward-equivalents per image: a
backward pass counts 2; methods with fixed usual settings state their own cost), on one
response scale:

* ``--scale probability``: the maps explain the softmax probability of the class (the
  model wrapped with a softmax, as the paper did), and the deletion / insertion curves
  track that probability;
* ``--scale logit``: the maps explain the logit, and the curves track the logit.

Metrics of each map: the key size under the paper's masks (mean, black, white, noise,
shift by 100/255 against the map's sign), RISE's deletion curve (pixels turned black,
most salient first) and insertion curve (pixels revealed over a blurred copy, sigma 5
px) with their areas, and the target probability as the top 0-50 % are masked by the
mean colour (the paper's sensitivity curve). Records are written per (photo, method) as
they finish, so an interrupted run continues where it stopped; tables and plots are
rewritten at the end of every call (``--report-only`` rewrites them without computing).

    python benchmarks/paper_eval.py --photos PHOTOS/ --budget 1500 --scale probability \
        --out docs/results/paper_eval/probability_1500
    python benchmarks/paper_eval.py --photos PHOTOS/ --only dogcat,shark --budget 60 \
        --methods leg lime gradcam --scale logit --out /tmp/tiny

Files in ``--out``: ``run.json`` (settings), ``records.jsonl`` (everything, per photo and
method, curves included), ``per_photo.csv``, ``summary.csv`` (mean, median, bootstrap
95 % interval of the mean over photos for every method and metric), ``timings.csv``,
``README.md`` (the tables), ``sensitivity.png``, ``deletion_insertion.png``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np
import torch
from PIL import Image

from captum_leg.estimators import estimator_names
from captum_leg.evaluation import (
    COARSE_KEY_FRACTIONS,
    DEFAULT_KEY_FRACTIONS,
    MASKS,
    CausalCurve,
    MethodSpec,
    SensitivityCurve,
    build_method,
    curve_auc,
    method_entry,
    method_names,
    plot_causal_curves,
    plot_sensitivity,
)
from captum_leg.evaluation.runner import (
    ForwardCounter,
    PaperMetrics,
    Photo,
    RecordStore,
    current_records,
    numpy_curves,
    run_methods,
    with_softmax,
)
from captum_leg.evaluation.tables import (
    flat_rows,
    markdown_table,
    paired_rows,
    summary_rows,
    timing_rows,
    wide_paired_rows,
    wide_rows,
    write_csv,
)
from captum_leg.models import load_efficientnet_lite0, preprocess

#: The methods compared, in table order, with their options beyond the budget.
METHODS: Dict[str, Dict[str, Any]] = {
    "leg": {},
    "leg-tv-path": {"lams": (0.1, 0.3)},
    "leg-gradient": {},
    "lime": {},
    "lime-ridge": {},
    "kernelshap": {},
    "ablation": {},
    "ig": {"n_steps": 50},
    "smoothgrad": {"nt_samples": 50},
    "saliency": {},
    "gradcam": {},
    "random": {},
}
KEY_METRICS = tuple(f"key_{m}" for m in MASKS)
CURVE_METRICS = ("deletion_auc", "insertion_auc")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", nargs="+", required=True, help="image files or folders of images")
    p.add_argument("--only", default=None, help="comma-separated photo names (file stems) to keep")
    p.add_argument("--budget", type=int, required=True, help="forward-equivalents per image for sampling methods")
    p.add_argument("--scale", choices=("probability", "logit"), required=True)
    p.add_argument("--out", required=True, help="folder of the run (resumed when it exists)")
    p.add_argument("--methods", nargs="+", default=None, choices=method_names(), metavar="METHOD",
                   help=f"default: {' '.join(METHODS)} "
                   "(leg-gradient only when LEG has estimator='gradient')")
    p.add_argument("--lams", type=float, nargs="+", default=[0.1, 0.3], help="LEG-TV lambdas of leg-tv-path")
    p.add_argument("--noise-level", type=float, default=None,
                   help="LEG's noise_level for every LEG method (default: LEG's, 0.09 on normalised inputs)")
    p.add_argument("--grid-size", type=int, default=None,
                   help="LEG's grid_size for every LEG method (default: LEG's, 14 at 224 x 224); "
                        "Lime, KernelShap and ablation keep their 14 x 14 cells")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--key-grid", choices=("fine", "coarse"), default="fine")
    p.add_argument("--curve-points", type=int, default=51)
    p.add_argument("--deletion-mask", default="black", choices=MASKS)
    p.add_argument("--insertion-start", default="blur", choices=("blur", "mean", "black", "white", "noise"))
    p.add_argument("--batch-size", type=int, default=16, help="images per forward call of the metrics")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--report-only", action="store_true", help="rewrite tables and plots from the records")
    return p.parse_args(argv)


def find_photos(paths: Sequence[str], only: str | None, device: str) -> List[Photo]:
    files: List[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise SystemExit(f"paper_eval: --photos: {p} is neither a file nor a folder")
    if only:
        wanted = only.split(",")
        missing = sorted(set(wanted) - {f.stem for f in files})
        if missing:
            raise SystemExit(f"paper_eval: --only: no photo named {', '.join(missing)}")
        files = [f for f in files if f.stem in wanted]

    def loader(path: Path):
        def load() -> torch.Tensor:
            with Image.open(path) as im:
                return preprocess(np.asarray(im.convert("RGB")), device=device)
        return load

    return [Photo(f.stem, loader(f)) for f in files]


def build_specs(
    names: Sequence[str], counter: ForwardCounter, budget: int, lams: Sequence[float],
    noise_level: float | None = None, grid_size: int | None = None,
) -> Dict[str, MethodSpec]:
    options = {**METHODS, "leg-tv-path": {"lams": tuple(lams)}}
    leg = {k: v for k, v in dict(noise_level=noise_level, grid_size=grid_size).items() if v is not None}
    return {n: build_method(n, counter, budget, **options.get(n, {}), **(leg if n.startswith("leg") else {}))
            for n in names}


def default_methods() -> List[str]:
    names = list(METHODS)
    if "gradient" not in estimator_names():
        print("paper_eval: leg-gradient skipped (LEG has no estimator='gradient' yet)", file=sys.stderr)
        names.remove("leg-gradient")
    return names


def write_report(out: Path, records: List[Dict[str, Any]], specs: Dict[str, MethodSpec], args, wall: float) -> None:
    rows = flat_rows(records)
    order = [v for s in specs.values() for v in (s.variants or (s.name,))]
    rows.sort(key=lambda r: (order.index(r["method"]), r["photo"]))
    write_csv(out / "per_photo.csv", rows)
    summary = summary_rows(rows, KEY_METRICS + CURVE_METRICS, seed=args.seed)
    write_csv(out / "summary.csv", summary)
    timings = timing_rows(records)
    write_csv(out / "timings.csv", timings)
    costs = {v: s.cost for s in specs.values() for v in (s.variants or (s.name,))}
    photos = sorted({r["photo"] for r in records})
    lines = [
        f"# Paper evaluation: {args.scale} scale, budget {args.budget}\n",
        f"EfficientNet-Lite0, {len(photos)} photos ({', '.join(photos)}), seed {args.seed}, "
        f"{args.key_grid} key-size fractions, deletion to {args.deletion_mask}, insertion over {args.insertion_start}, "
        f"{args.curve_points} curve points. Cells: mean (median) [bootstrap 95 % interval of the mean].\n",
        f"Command: `{command_line('paper_eval.py')}`\n",
        ("" if args.report_only else f"Wall time of the last call: {wall:.0f} s. ")
        + f"Maps and metrics took {sum(t['total_seconds'] for t in timings):.0f} s over all calls.\n",
        "## Key size (smaller is better)\n", markdown_table(wide_rows(summary, KEY_METRICS, costs)),
        f"## Deletion and insertion areas ({args.scale}; deletion: lower is better, insertion: higher)\n",
        markdown_table(wide_rows(summary, CURVE_METRICS, costs)),
        *paired_section(out, rows, args.seed),
        "## Cost and time per photo\n", markdown_table(timings),
        "## Methods\n", markdown_table([dict(method=n, cost=s.cost, summary=method_entry(n).summary,
                                             settings=_short(s.settings)) for n, s in specs.items()]),
        "![sensitivity](sensitivity.png)\n", "![deletion and insertion](deletion_insertion.png)\n",
    ]
    (out / "README.md").write_text("\n".join(lines))
    write_plots(out, records, args)


def paired_section(out: Path, rows: List[Dict[str, Any]], seed: int) -> List[str]:
    """LEG against every other method, photo by photo (``paired.csv`` and a table)."""
    methods = {r["method"] for r in rows}
    if "leg" not in methods or len(methods) == 1:
        return []
    metrics = KEY_METRICS + CURVE_METRICS
    paired = paired_rows(rows, "leg", metrics, higher_is_better=("insertion_auc",), seed=seed)
    write_csv(out / "paired.csv", paired)
    return ["## LEG against each method, photo by photo\n",
            "Mean of LEG's value minus the method's over the photos both have [bootstrap 95 % interval "
            "of that mean], then photos where LEG is better / level / worse. Negative is better for LEG "
            "except in insertion.\n",
            markdown_table(wide_paired_rows(paired, metrics))]


def command_line(script: str) -> str:
    """This call's command, the photo paths shown as ``PHOTOS/`` (they lie outside the repository)."""
    words, skipping = [f"python benchmarks/{script}"], False
    for word in sys.argv[1:]:
        skipping = skipping and not word.startswith("--")
        if not skipping and word != "--report-only":
            words.append(word)
        if word == "--photos":
            words.append("PHOTOS/")
            skipping = True
    return " ".join(words)


def _short(settings: Dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items() if v is not None)


def write_plots(out: Path, records: List[Dict[str, Any]], args) -> None:
    if not records:
        return
    fr = np.asarray(PaperMetrics().sensitivity_fractions)
    sens = {n: SensitivityCurve.from_probability(fr, p) for n, p in numpy_curves(records, "sensitivity").items()}
    plot_sensitivity(sens, str(out / "sensitivity.png"), title=f"mean mask, {args.scale} maps, budget {args.budget}")
    points = np.linspace(0, 1, args.curve_points)
    dele, ins = numpy_curves(records, "deletion"), numpy_curves(records, "insertion")
    curves = {n: [CausalCurve("deletion", points, dele[n], curve_auc(points, dele[n])),
                  CausalCurve("insertion", points, ins[n], curve_auc(points, ins[n]))] for n in dele}
    ylabel = "target probability" if args.scale == "probability" else "target logit"
    plot_causal_curves(curves, str(out / "deletion_insertion.png"), title=f"budget {args.budget}", ylabel=ylabel)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    model = load_efficientnet_lite0(args.device)
    counter = ForwardCounter(with_softmax(model) if args.scale == "probability" else model)
    specs = build_specs(args.methods or default_methods(), counter, args.budget, args.lams, args.noise_level,
                        args.grid_size)
    metrics = PaperMetrics(
        key_fractions=DEFAULT_KEY_FRACTIONS if args.key_grid == "fine" else COARSE_KEY_FRACTIONS,
        deletion_mask=args.deletion_mask, insertion_start=args.insertion_start, curve_points=args.curve_points,
        output_is_probability=args.scale == "probability", batch_size=args.batch_size, seed=args.seed,
    )
    settings = dict(model="efficientnet-lite0", image_size=224, scale=args.scale, budget=args.budget,
                    seed=args.seed, metrics=metrics.settings())
    store = RecordStore(out, settings)
    photos = find_photos(args.photos, args.only, args.device)
    t0 = time.perf_counter()
    if not args.report_only:
        run_methods(photos, specs, counter, metrics, store, seed=args.seed,
                    log=lambda line: print(line, flush=True))
    records = current_records(store, specs, [p.name for p in photos])
    write_report(out, records, specs, args, time.perf_counter() - t0)
    print(f"paper_eval: {len(records)} records of {len(photos)} photos; wrote {out / 'README.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
