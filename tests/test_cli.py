"""End-to-end tests of the ``captum-leg`` command on tiny images and a tiny user model.

The user model is :func:`tiny_model` below, loaded by the CLI as
``--model tests/test_cli.py:tiny_model`` (the path form of ``MODULE:CALLABLE``).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from captum_leg.cli import build_parser, collect_images, main, output_names

REPO = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve()


def tiny_model() -> nn.Module:
    """A seeded 3-class CNN on (N, 3, 16, 16) inputs in [0, 1] (--normalize unit)."""
    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):  # layer construction draws from the global RNG
        conv = nn.Conv2d(3, 4, 3, padding=1)
        fc = nn.Linear(4 * 4 * 4, 3)
    with torch.no_grad():
        for p in list(conv.parameters()) + list(fc.parameters()):
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return nn.Sequential(conv, nn.ReLU(), nn.AvgPool2d(4), nn.Flatten(), fc)


def _images(folder: Path, n: int = 2) -> list:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def _explain_args(src, out, *extra):
    return [
        "explain", str(src), "--out", str(out), "--model", f"{THIS}:tiny_model", "--normalize", "unit",
        "--image-size", "16", "--n-samples", "4", "--grid-size", "4", "--no-progress", *extra,
    ]


def test_help_texts_explain_the_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for word in ("explain", "evaluate", "sanity", "demo", "examples:", "torchrun", "MODULE:CALLABLE"):
        assert word in text
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    text = capsys.readouterr().out
    assert "--n-samples" in text and "--lam" in text and "resumable" in text


def test_explain_end_to_end_and_resume(tmp_path, capsys):
    _images(tmp_path / "in")
    out = tmp_path / "out"
    assert main(_explain_args(tmp_path / "in", out)) == 0
    log = capsys.readouterr().out
    assert "2 to explain" in log and str(out) in log
    files = sorted(p.name for p in out.iterdir())
    assert files == ["img0.json", "img0.npy", "img0.png", "img1.json", "img1.npy", "img1.png"]
    a = np.load(out / "img0.npy")
    assert a.shape == (3, 16, 16) and np.isfinite(a).all() and np.abs(a).sum() > 0
    first_map1 = np.load(out / "img1.npy")
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    contents = {p.name: p.read_bytes() for p in out.iterdir()}
    # resume: nothing recomputed, outputs untouched
    assert main(_explain_args(tmp_path / "in", out)) == 0
    log = capsys.readouterr().out
    assert "2 already done, 0 to explain" in log
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    assert {p.name: p.read_bytes() for p in out.iterdir()} == contents
    # a deleted picture is recomputed, the other image is not
    (out / "img1.png").unlink()
    assert main(_explain_args(tmp_path / "in", out)) == 0
    assert "1 already done, 1 to explain" in capsys.readouterr().out
    assert (out / "img1.png").exists()
    assert (out / "img0.npy").stat().st_mtime_ns == mtimes["img0.npy"]
    # same seed: the recomputed map (now in a batch of one) equals the first one
    np.testing.assert_allclose(np.load(out / "img1.npy"), first_map1, rtol=1e-4, atol=1e-6)


def test_explain_several_lams_and_explicit_target(tmp_path, capsys):
    (src,) = _images(tmp_path / "in", 1)
    out = tmp_path / "out"
    assert main(_explain_args(src, out, "--penalty", "tv", "--lam", "0.1", "0.3", "--target", "2")) == 0
    assert "class 2" in capsys.readouterr().out
    a = np.load(out / "img0.npy")
    assert a.shape == (2, 3, 16, 16)
    # larger lam is sparser (fewer distinct values / more zeros, never more)
    assert np.count_nonzero(np.abs(a[1]) > 1e-8) <= np.count_nonzero(np.abs(a[0]) > 1e-8)


def _usage_error(capsys, argv) -> str:
    """Run the CLI, expect an argparse-style usage error; return its one error line."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert "Traceback" not in err and err.startswith("usage: captum-leg")
    last = err.rstrip("\n").splitlines()[-1]
    assert last.startswith("captum-leg ") and ": error: argument --" in last
    return last


@pytest.mark.parametrize(
    "extra, option, detail",
    [
        (["--solver", "foo"], "--solver", "'foo'"),
        (["--penalty", "tv", "--solver", "hgihs"], "--solver", "'hgihs'"),
        (["--target", "5000"], "--target", "3 classes"),  # tiny_model has 3 classes
        (["--target", "-1"], "--target", "-1"),
        (["--noise-level", "0"], "--noise-level", "0"),
        (["--noise-level", "nan"], "--noise-level", "nan"),
        (["--grid-size", "0"], "--grid-size", "0"),
        (["--grid-size", "17"], "--grid-size", "17"),  # more cells than the 16-pixel side
        (["--lam", "1.5"], "--lam", "1.5"),
        (["--penalty", "tv", "--lam", "0.1", "0"], "--lam", "0"),
        (["--n-samples", "0"], "--n-samples", "0"),
        (["--device", "nonsense"], "--device", "nonsense"),
    ],
)
def test_bad_option_values_are_usage_errors(tmp_path, capsys, extra, option, detail):
    _images(tmp_path / "in", 1)
    out = tmp_path / "o"
    line = _usage_error(capsys, _explain_args(tmp_path / "in", out, *extra))
    assert line.startswith(f"captum-leg explain: error: argument {option}: ") and detail in line
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_bad_model_and_paths_are_reported(tmp_path, capsys):
    _images(tmp_path / "in", 1)
    line = _usage_error(capsys, ["explain", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--model", "nocolon"])
    assert "argument --model: expected MODULE:CALLABLE" in line
    line = _usage_error(capsys, _explain_args(tmp_path / "in", tmp_path / "o", "--model", f"{THIS}:no_such_factory"))
    assert "argument --model: cannot load" in line
    with pytest.raises(SystemExit, match="no such file"):
        main(_explain_args(tmp_path / "missing", tmp_path / "o"))


def test_other_commands_report_bad_values_as_usage_errors(tmp_path, capsys):
    line = _usage_error(capsys, ["evaluate", str(tmp_path), "--out", str(tmp_path / "e"), "--methods", "leg", "lemon"])
    assert line.startswith("captum-leg evaluate: error: argument --methods: ") and "'lemon'" in line
    line = _usage_error(capsys, ["evaluate", str(tmp_path), "--out", str(tmp_path / "e"), "--masks", "purple"])
    assert "argument --masks" in line
    line = _usage_error(capsys, ["sanity", "--out", str(tmp_path / "s"), "--noise-level", "-0.1"])
    assert line.startswith("captum-leg sanity: error: argument --noise-level: ")
    line = _usage_error(capsys, ["demo", "--out", str(tmp_path / "d.png"), "--grid-size", "0"])
    assert line.startswith("captum-leg demo: error: argument --grid-size: ")


def test_explain_recomputes_outputs_whose_settings_changed(tmp_path, capsys):
    _images(tmp_path / "in")
    out = tmp_path / "out"
    assert main(_explain_args(tmp_path / "in", out)) == 0
    capsys.readouterr()
    stored = json.loads((out / "img0.json").read_text())["settings"]
    assert stored["grid_size"] == 4 and stored["n_samples"] == 4 and stored["seed"] == 0
    grid4 = np.load(out / "img0.npy")
    # a setting that does not change the map (batch size) keeps the outputs
    assert main(_explain_args(tmp_path / "in", out, "--batch-size", "1")) == 0
    assert "2 already done, 0 to explain" in capsys.readouterr().out
    # a different grid recomputes both images and says why
    args = _explain_args(tmp_path / "in", out)
    args[args.index("--grid-size") + 1] = "2"
    assert main(args) == 0
    log = capsys.readouterr().out
    assert "recomputing img0: settings changed (grid_size 4 -> 2)" in log
    assert "recomputing img1: settings changed (grid_size 4 -> 2)" in log
    assert "0 already done, 2 to explain" in log
    assert json.loads((out / "img0.json").read_text())["settings"]["grid_size"] == 2
    grid2 = np.load(out / "img0.npy")
    # a 2 x 2 grid has at most 4 distinct values per channel, the 4 x 4 one more
    assert max(len(np.unique(c)) for c in grid2) <= 4 < max(len(np.unique(c)) for c in grid4)
    assert main(args) == 0
    assert "2 already done, 0 to explain" in capsys.readouterr().out
    # several settings at once, and outputs with no settings file (older runs)
    (out / "img1.json").unlink()
    assert main(args + ["--seed", "3", "--penalty", "tv"]) == 0
    log = capsys.readouterr().out
    assert "recomputing img0: settings changed (penalty \"none\" -> \"tv\", seed 0 -> 3, lam null -> [0.1], solver null -> \"auto\")" in log
    assert "recomputing img1: no settings stored with it" in log
    # an edited image is recomputed
    (tmp_path / "in" / "img0.png").write_bytes((tmp_path / "in" / "img1.png").read_bytes())
    assert main(args + ["--seed", "3", "--penalty", "tv"]) == 0
    log = capsys.readouterr().out
    assert "recomputing img0: settings changed (image file changed)" in log and "1 already done" in log


def _no_partial_files(out: Path) -> None:
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")], names
    stems = {n.rsplit(".", 1)[0] for n in names}
    for stem in stems:  # every image has all three outputs or none
        assert {f"{stem}.npy", f"{stem}.png", f"{stem}.json"} <= set(names), names


def test_ctrl_c_while_writing_leaves_no_partial_files(tmp_path, capsys, monkeypatch):
    import captum_leg.cli as cli

    _images(tmp_path / "in")
    out = tmp_path / "out"
    real = cli._save_figure
    calls = []

    def interrupted_on_second_image(fig, path, **kw):
        calls.append(path.name)
        if len(calls) == 2:  # img1.npy is written by now; Ctrl-C mid-way through its picture
            cli._atomic_save(path, lambda fh: (fh.write(b"half a png"), _raise(KeyboardInterrupt())))
        real(fig, path, **kw)

    monkeypatch.setattr(cli, "_save_figure", interrupted_on_second_image)
    assert main(_explain_args(tmp_path / "in", out)) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["captum-leg: interrupted; completed outputs are kept, rerun to resume"]
    assert sorted(p.name for p in out.iterdir()) == ["img0.json", "img0.npy", "img0.png"]
    _no_partial_files(out)
    # a rerun finishes the job
    monkeypatch.setattr(cli, "_save_figure", real)
    assert main(_explain_args(tmp_path / "in", out)) == 0
    assert "1 already done, 1 to explain" in capsys.readouterr().out


def _raise(exc: BaseException):
    raise exc


def slow_model() -> nn.Module:
    """tiny_model, slowed down so that a test can interrupt it mid-run."""
    import time

    model = tiny_model()

    def forward(x):
        time.sleep(0.02)
        return model(x)

    return forward


def test_sigint_exits_130_with_one_line_and_no_files(tmp_path):
    _images(tmp_path / "in", 2)
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    args = _explain_args(tmp_path / "in", out, "--n-samples", "400", "--perturbations-per-eval", "1")
    args[args.index("--model") + 1] = f"{THIS}:slow_model"
    # a shell's background job inherits SIGINT ignored; the CLI's user has it delivered
    proc = subprocess.Popen([sys.executable, "-m", "captum_leg.cli", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for line in proc.stdout:  # wait until the explaining has started
            if "to explain" in line:
                break
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == "captum-leg: interrupted; completed outputs are kept, rerun to resume"
    assert "Traceback" not in stderr
    assert not list(out.iterdir())


def test_collect_images_and_clashing_names(tmp_path):
    a = _images(tmp_path / "a", 1)
    b = _images(tmp_path / "b", 1)
    files = collect_images([str(tmp_path / "a"), str(b[0]), str(a[0])])  # duplicate dropped
    assert files == [a[0], b[0]]
    assert output_names(files) == ["a_img0", "b_img0"]


def test_torchrun_shards_images_across_two_processes(tmp_path):
    _images(tmp_path / "in", 3)
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "captum_leg.cli", *_explain_args(tmp_path / "in", out),
    ]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    log = res.stdout + res.stderr
    # rank 0 gets images 0 and 2, rank 1 gets image 1; together all three, once each
    assert "[rank 0/2] 2 image(s)" in log and "[rank 1/2] 1 image(s)" in log
    assert sorted(p.name for p in out.glob("*.npy")) == ["img0.npy", "img1.npy", "img2.npy"]
    assert log.count("img1.png: class") == 1
    # the sharded result equals a single-process run (same seed, shared noise per batch
    # of one image), up to float32 rounding: thread counts and batch sizes differ, so
    # sums run in another order
    single = tmp_path / "single"
    assert main(_explain_args(tmp_path / "in", single, "--batch-size", "1")) == 0
    for n in ("img0", "img1", "img2"):
        ref = np.load(single / f"{n}.npy")
        np.testing.assert_allclose(np.load(out / f"{n}.npy"), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_parser_defaults_are_documented():
    p = build_parser()
    args = p.parse_args(["explain", "x.jpg", "--out", "o"])
    # None: LEG's own defaults (the same map as LEG(model).attribute(x, target=c))
    assert args.n_samples is None and args.grid_size is None and args.lam == [0.1]
    assert args.penalty == "none" and args.seed == 0
    assert (args.estimator, args.sampling, args.target_precision) == ("ridge", "antithetic", None)
    assert "2000" in p._subparsers._group_actions[0].choices["explain"].format_help()
    args = p.parse_args(["evaluate", "x", "--out", "o"])
    assert "leg" in args.methods and args.masks == ["mean", "black", "white", "noise", "shift"]


def test_evaluate_writes_tables_and_plot(tmp_path, capsys):
    _images(tmp_path / "in", 2)
    out = tmp_path / "ev"
    args = [
        "evaluate", str(tmp_path / "in"), "--out", str(out), "--model", f"{THIS}:tiny_model",
        "--normalize", "unit", "--image-size", "16", "--n-samples", "4", "--grid-size", "4",
        "--methods", "leg", "lime", "saliency", "gradcam", "--masks", "mean", "black",
        "--key-grid", "coarse", "--sensitivity-steps", "4", "--no-progress",
    ]
    assert main(args) == 0
    for name in ("key_size.csv", "key_size.md", "key_size_wide.md", "key_size_per_image.csv", "sensitivity.png", "sensitivity.npz"):
        assert (out / name).exists(), name
    rows = list(csv.DictReader(open(out / "key_size.csv")))
    assert len(rows) == 4 * 2
    assert {r["method"] for r in rows} == {"leg", "lime", "saliency", "gradcam"}
    for r in rows:
        assert 0 < float(r["mean"]) <= 1 and 0 < float(r["median"]) <= 1
    assert {r["cost"] for r in rows if r["method"] in ("leg", "lime")} == {"12"}  # 3 x 4, antithetic
    z = np.load(out / "sensitivity.npz")
    assert z["fractions"].shape == (5,) and z["leg_probability"].shape == (2, 5)
    # a rerun reuses the cached maps
    capsys.readouterr()
    cached = sorted((out / "maps").rglob("*.npy"))
    mt = [p.stat().st_mtime_ns for p in cached]
    assert main(args) == 0
    assert [p.stat().st_mtime_ns for p in cached] == mt


def test_sanity_command_small(tmp_path, capsys):
    pytest.importorskip("sklearn")
    out = tmp_path / "s"
    assert main(["sanity", "--out", str(out), "--n-images", "2", "--n-samples", "30", "--epochs", "1"]) == 0
    log = capsys.readouterr().out
    assert "test accuracy" in log
    lines = [l for l in (out / "sanity.md").read_text().splitlines() if l.startswith("|")]
    assert "LEG |rho|" in lines[0] and "noise floor" in lines[2]
    assert len(lines) == 3 + 4  # columns, rule, floor row, four randomised layers
    rows = list(csv.DictReader(open(out / "sanity.csv")))
    floor, last = float(rows[0]["LEG |rho|"]), float(rows[-1]["gradient |rho|"])
    assert -1 <= last <= 1 and -1 <= floor <= 1
    assert (out / "sanity.png").stat().st_size > 1000


def test_demo_runs_and_reports(tmp_path, capsys):
    pytest.importorskip("skimage")
    pytest.importorskip("efficientnet_lite_pytorch")
    out = tmp_path / "demo.png"
    assert main(["demo", "--out", str(out), "--n-samples", "4"]) == 0
    log = capsys.readouterr().out
    assert "predicted class" in log and str(out.resolve()) in log and "LEG and LEG-TV" in log and "forward passes" in log
    assert out.stat().st_size > 5000
