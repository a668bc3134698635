"""Cascading randomisation of EfficientNet-Lite0, block by block, for every method at a budget.

The sanity check of Adebayo et al. as the LEG paper ran it: re-initialise the network from
the top (classifier, head, then one block after another: ``--layers`` steps), recompute
each method's map of each photo after every step, and compare it with the method's map of
the trained network by Spearman rank correlation (signed ``rho`` and of absolute values
``|rho|``). Next to it, each method's *noise floor*: the correlation of two of its maps of
the trained network made with different seeds. A method passes when its correlation
falls clearly below its own floor. Photos, preprocessing, scales and budgets as in
``paper_eval.py``; records per (photo, method), resumable.

    python benchmarks/paper_sanity.py --photos PHOTOS/ --only dogcat,shark,car \
        --budget 1500 --scale probability --layers 6 \
        --out docs/results/paper_eval/sanity_probability_1500
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np
import torch
from paper_eval import METHODS, command_line, find_photos  # the sibling script (its folder is on the path)

from captum_leg.evaluation import (
    CascadingResult,
    block_layers,
    build_method,
    cascading_randomization,
    method_names,
    plot_cascading,
)
from captum_leg.evaluation.runner import RecordStore, settings_key, with_softmax
from captum_leg.evaluation.statistics import summarize
from captum_leg.evaluation.tables import markdown_table, write_csv
from captum_leg.models import load_efficientnet_lite0

SANITY_METHODS = ("leg", "leg-tv", "lime", "kernelshap", "ig", "smoothgrad", "saliency", "gradcam")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", nargs="+", required=True, help="image files or folders of images")
    p.add_argument("--only", default=None, help="comma-separated photo names (file stems) to keep")
    p.add_argument("--budget", type=int, required=True)
    p.add_argument("--scale", choices=("probability", "logit"), required=True)
    p.add_argument("--layers", type=int, default=6, help="randomisation steps, top down")
    p.add_argument("--methods", nargs="+", default=list(SANITY_METHODS), choices=method_names(), metavar="METHOD")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--report-only", action="store_true")
    return p.parse_args(argv)


def run(args, model: torch.nn.Module, layers: List[str], store: RecordStore, specs: Dict[str, Any]) -> None:
    done = store.done()
    for photo in find_photos(args.photos, args.only, args.device):
        todo = [n for n in args.methods if done.get((photo.name, n)) != settings_key(specs[n])]
        if not todo:
            continue
        x = photo.load()
        with torch.no_grad():
            target = model(x).argmax(-1)
        for name in todo:
            def explain(m, xx, t, seed, name=name):
                return build_method(name, m, args.budget, **METHODS.get(name, {}))(xx, t, seed)

            t0 = time.perf_counter()
            res = cascading_randomization(model, x, target, explain, layers=layers, seed=args.seed,
                                          floor_seed=args.seed + 1)
            store.append(dict(
                photo=photo.name, call=name, settings=settings_key(specs[name]), layers=res.layers,
                rho=res.spearman[:, 0].tolist(), rho_abs=res.spearman_abs[:, 0].tolist(),
                floor=float(res.noise_floor[0]), floor_abs=float(res.noise_floor_abs[0]),
                seconds=time.perf_counter() - t0,
            ))
            print(f"{photo.name} {name}: |rho| floor {float(res.noise_floor_abs[0]):.3f}, after "
                  f"{layers[-1]} {float(res.spearman_abs[-1, 0]):.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)


def report(out: Path, records: List[Dict[str, Any]], args, layers: List[str]) -> None:
    rows, results = [], {}
    for name in args.methods:
        mine = [r for r in records if r["call"] == name]
        if not mine:
            continue
        rho_abs, rho = np.array([r["rho_abs"] for r in mine]), np.array([r["rho"] for r in mine])
        floor_abs, floor = np.array([r["floor_abs"] for r in mine]), np.array([r["floor"] for r in mine])
        for step, (va, vs) in enumerate([(floor_abs, floor)] + list(zip(rho_abs.T, rho.T))):
            a, s = summarize(va, seed=args.seed), summarize(vs, seed=args.seed)
            rows.append(dict(method=name, randomised=(["(seed-to-seed floor)"] + layers)[step], photos=a["n"],
                             abs_mean=a["mean"], abs_low=a["low"], abs_high=a["high"], signed_mean=s["mean"],
                             signed_low=s["low"], signed_high=s["high"]))
        results[name] = CascadingResult(layers, torch.tensor(rho.T), torch.tensor(rho_abs.T), torch.tensor(floor),
                                        torch.tensor(floor_abs), torch.empty(0), [])
    write_csv(out / "sanity.csv", rows)
    photos = sorted({r["photo"] for r in records})
    text = [f"# Cascading randomisation: {args.scale} scale, budget {args.budget}\n",
            f"EfficientNet-Lite0, {len(photos)} photos ({', '.join(photos)}), seed {args.seed} (floor: seed "
            f"{args.seed + 1}). Spearman correlation with the trained network's map; means over photos with "
            "bootstrap 95 % intervals of the mean.\n",
            f"Command: `{command_line('paper_sanity.py')}`\n",
            markdown_table(rows), "![sanity](sanity.png)\n"]
    (out / "README.md").write_text("\n".join(text))
    if results:
        plot_cascading(results, str(out / "sanity.png"), title=f"{args.scale} maps, budget {args.budget}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    net = load_efficientnet_lite0(args.device)
    model = with_softmax(net) if args.scale == "probability" else net
    prefix = "0." if args.scale == "probability" else ""  # the network inside the softmax wrapper
    layers = [prefix + n for n in block_layers(net)[: args.layers]]
    store = RecordStore(out, dict(model="efficientnet-lite0", image_size=224, scale=args.scale, budget=args.budget,
                                  seed=args.seed, layers=layers))
    specs = {n: build_method(n, model, args.budget, **METHODS.get(n, {})) for n in args.methods}
    if not args.report_only:
        run(args, model, layers, store, specs)
    keys = {(n, settings_key(s)) for n, s in specs.items()}
    records = [r for r in store.records() if (r["call"], r["settings"]) in keys]
    report(out, records, args, layers)
    print(f"paper_sanity: {len(records)} records; wrote {out / 'README.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
