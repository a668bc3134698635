"""End to end: one LEG-TV map of ``skimage.data.chelsea()`` by EfficientNet-Lite0.

Prints the time of the default ``LEG.attribute(x, target)`` (or the ``--n-samples`` /
``--grid`` given), of LEG-TV over ``--lam`` from the same samples
(``attribute_tv_path``), and of the same number of forward passes alone on the same
batch size (target: LEG within 15 % of its forward passes); then, for comparison, the
gradient path at its defaults and IntegratedGradients with 50 steps.

    python benchmarks/end_to_end.py [--n-samples N] [--grid K] [--lam 0.1 0.3] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import skimage.data
import torch

from captum_leg import LEG
from captum_leg.attribution import default_perturbations_per_eval
from captum_leg.models import load_efficientnet_lite0, preprocess


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-samples", type=int, default=None, help="per channel (default: LEG's)")
    ap.add_argument("--grid", type=int, default=None, help="cells per axis (default: LEG's)")
    ap.add_argument("--lam", type=float, nargs="+", default=[0.1, 0.3])
    ap.add_argument("--ppe", type=int, default=None, help="perturbations_per_eval (default: LEG's)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    model = load_efficientnet_lite0(device)
    x = preprocess(skimage.data.chelsea(), device=device)
    with torch.no_grad():
        target = int(model(x).argmax())
    ppe = args.ppe or default_perturbations_per_eval([x])
    batch = x.repeat(ppe, 1, 1, 1)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    leg = LEG(model)
    options = dict(perturbations_per_eval=ppe, seed=0)
    if args.n_samples is not None:
        options["n_samples"] = args.n_samples
    if args.grid is not None:
        options["grid_size"] = args.grid
    with torch.no_grad():
        model(batch)  # warm-up
    sync()
    t0 = time.perf_counter()
    attr, _ = leg.attribute(x, target=target, return_standard_error=True, **options)
    sync()
    rows = [("LEG with standard errors", time.perf_counter() - t0, f"{tuple(attr.shape)}")]
    run = leg.last_run
    n_forward = run.forward_passes
    t0 = time.perf_counter()
    path = leg.attribute_tv_path(x, target, lams=args.lam, **options)
    sync()
    rows.append((f"LEG-TV lams={args.lam}", time.perf_counter() - t0, f"{tuple(path.shape)}"))
    extra = _peers(model, x, target, ppe, sync)

    with torch.no_grad():
        t0 = time.perf_counter()
        done = 0
        while done < n_forward:
            k = min(ppe, n_forward - done)
            model(batch[:k])
            done += k
        sync()
        t_forward = time.perf_counter() - t0
    rows.insert(0, ("forward passes alone", t_forward, ""))
    print(f"device={device} threads={torch.get_num_threads()} target={target} "
          f"n={run.samples_per_channel}/channel forward passes={n_forward} "
          f"relative SE={float(run.relative_standard_error[0]):.3f} perturbations_per_eval={ppe}")
    print(f"{'what':<34}{'time [s]':>10}{'ratio':>8}  output")
    for name, t, shape in rows:
        print(f"{name:<34}{t:>10.2f}{t / t_forward:>8.3f}  {shape}")
    print("for comparison (not the same number of passes):")
    for name, t, shape in extra:
        print(f"{name:<34}{t:>10.2f}{'':>8}  {shape}")


def _peers(model: torch.nn.Module, x: torch.Tensor, target: int, ppe: int, sync) -> list:  # type: ignore[no-untyped-def]
    """The gradient path at its defaults and IntegratedGradients (50 steps), timed."""
    from captum.attr import IntegratedGradients

    rows = []
    leg = LEG(model)
    t0 = time.perf_counter()
    leg.attribute(x, target=target, estimator="gradient", perturbations_per_eval=ppe, seed=0)
    sync()
    run = leg.last_run
    rows.append(("LEG, estimator='gradient'", time.perf_counter() - t0,
                 f"{run.forward_passes} forward + {run.backward_passes} backward passes"))
    t0 = time.perf_counter()
    IntegratedGradients(model).attribute(x, target=target, n_steps=50, internal_batch_size=ppe)
    sync()
    rows.append(("IntegratedGradients, 50 steps", time.perf_counter() - t0, "50 forward + 50 backward passes"))
    return rows


if __name__ == "__main__":
    main()
