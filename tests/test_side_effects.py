"""captum_leg leaves process-wide state alone: matplotlib's backend, torch's
thread count, the global random generators (CUDA's included), ``sys.path`` and the
stdout file descriptor.

The checks run in a fresh interpreter that first selects a backend other than Agg, so a
library call that switched backends (``matplotlib.use("Agg")``) would be seen even when
the test session itself runs under ``MPLBACKEND=Agg``. (Whether pyplot gets imported is
not ours to test: ``captum.attr`` imports it.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from captum_leg.evaluation import build_method, cascading_randomization, reinitialize

REPO = Path(__file__).resolve().parents[1]
TEST_CLI = REPO / "tests" / "test_cli.py"

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import matplotlib
    matplotlib.use("svg")  # any backend but Agg
    import numpy as np
    import torch

    def state():
        return {
            "backend": matplotlib.get_backend().lower(),
            "threads": torch.get_num_threads(),
            "interop": torch.get_num_interop_threads(),
            "torch_rng": torch.random.get_rng_state().tolist(),
            "numpy_rng": np.random.get_state()[1].tolist(),
            "stdout_fd": list(os.fstat(1)[:2]),
            "sys_path": list(sys.path),
        }

    # built first: constructing layers draws from the global RNG
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Flatten(),
                                torch.nn.Linear(2 * 8 * 8, 3))
    before = state()
    from PIL import Image
    from captum_leg.cli import main
    from captum_leg.evaluation import (SensitivityCurve, cascading_randomization,
                                       plot_cascading, plot_sensitivity)

    src, out = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(0)
    os.makedirs(src)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(f"{src}/img{i}.png")
    common = ["--model", sys.argv[3] + ":tiny_model", "--normalize", "unit", "--image-size", "16",
              "--n-samples", "4", "--grid-size", "4", "--no-progress"]
    assert main(["explain", src, "--out", out + "/leg", *common]) == 0
    assert main(["explain", src, "--out", out + "/tv", "--penalty", "tv", "--lam", "0.2", *common]) == 0
    assert main(["evaluate", src, "--out", out + "/ev", "--methods", "leg", "saliency", "--masks", "mean",
                 "--key-grid", "coarse", "--sensitivity-steps", "2", *common]) == 0

    f = np.linspace(0, 0.5, 3)
    fig = plot_sensitivity({"a": SensitivityCurve(f, np.ones((2, 3)), np.zeros((2, 3)))},
                           out + "/s.png", title="t")
    x = torch.linspace(0, 1, 2 * 64).reshape(2, 1, 8, 8)
    def explain(m, xx, t, seed):
        xx = xx.detach().requires_grad_()
        return torch.autograd.grad(m(xx)[:, 0].sum(), xx)[0]

    res = cascading_randomization(model, x, torch.zeros(2, dtype=torch.long), explain, seed=0, floor_seed=1)
    plot_cascading({"grad": res}, out + "/c.png", image=x[0, 0].numpy(), title="t")
    print(json.dumps({"before": before, "after": state(), "figure": type(fig).__module__}))
    """
)


def test_library_calls_leave_process_state_alone(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "in"), str(tmp_path / "out"), str(TEST_CLI)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    before, after = report["before"], report["after"]
    assert before["backend"] == "svg"
    for key in before:
        assert after[key] == before[key], key
    assert report["figure"] == "matplotlib.figure"
    for name in ("leg/img0.png", "tv/img1.png", "ev/sensitivity.png", "s.png", "c.png"):
        assert (tmp_path / "out" / name).stat().st_size > 1000, name


def _small_cnn() -> nn.Module:
    with torch.random.fork_rng(devices=[]):  # layer construction draws from the global RNG
        torch.random.default_generator.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))


def _seeded_helpers(model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> None:
    """Every evaluation helper that draws from torch's global generators, seeded twice
    (the same result) and unseeded twice (fresh draws each time)."""
    for name in ("lime", "kernelshap", "smoothgrad"):
        spec = build_method(name, model, 12, feature_grid=4, perturbations_per_eval=4)
        assert torch.equal(spec(x, t, 3), spec(x, t, 3)), name
        assert not torch.equal(spec(x, t, None), spec(x, t, None)), name
    layer = model[-1]
    before = layer.weight.clone()
    reinitialize(layer, 5)
    first = layer.weight.clone()
    reinitialize(layer, 5)
    assert torch.equal(layer.weight, first) and not torch.equal(first, before)

    def grad(m, xx, tt, seed):
        xx = xx.detach().requires_grad_()
        return torch.autograd.grad(m(xx).gather(1, tt[:, None]).sum(), xx)[0]

    cascading_randomization(model, x, t, grad, seed=0, floor_seed=1)


def test_evaluation_helpers_leave_the_global_generators_alone(monkeypatch):
    # torch.manual_seed seeds the CUDA generators too (before CUDA starts, it queues that
    # seeding for later), which fork_rng(devices=[]) does not undo: it must not be called
    seeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: seeded.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: seeded.append(seed))
    model = _small_cnn()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 2])
    state = torch.random.get_rng_state()
    _seeded_helpers(model, x, t)
    try:
        from captum_leg.evaluation.digits import train_digits_cnn
        import sklearn  # noqa: F401
    except ImportError:
        pass
    else:
        a = train_digits_cnn(epochs=1, seed=2)[0].fc2.weight
        assert torch.equal(a, train_digits_cnn(epochs=1, seed=2)[0].fc2.weight)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert seeded == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_evaluation_helpers_leave_the_cuda_generator_alone():
    model = _small_cnn().cuda()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)).cuda()
    t = torch.tensor([0, 2], device="cuda")
    cpu, cuda = torch.random.get_rng_state(), torch.cuda.get_rng_state()
    _seeded_helpers(model, x, t)
    assert torch.equal(torch.cuda.get_rng_state(), cuda)
    assert torch.equal(torch.random.get_rng_state(), cpu)
