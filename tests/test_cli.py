"""End-to-end tests of the ``captum-leg`` command on tiny images and a tiny user model.

The user model is :func:`tiny_model` below, loaded by the CLI as
``--model tests/test_cli.py:tiny_model`` (the path form of ``MODULE:CALLABLE``).
"""

from __future__ import annotations

import csv
import json
import os
import re
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


class _Picky(nn.Module):
    """tiny_model, but it raises on bright images (mean above 0.9, e.g. a white one)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = tiny_model()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x.mean((1, 2, 3)) > 0.9).any()):
            raise RuntimeError("cannot handle a bright image")
        return self.inner(x)


def picky_model() -> nn.Module:
    return _Picky()


def _white(folder: Path, name: str = "white.png") -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((20, 24, 3), 255, dtype=np.uint8)).save(folder / name)
    return folder / name


def _bad_files(folder: Path) -> list:
    """A JPEG cut short (valid when written, then truncated) and a text file named .png."""
    import io

    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(buf, format="JPEG")
    cut = folder / "cut.jpg"
    cut.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    fake = folder / "notes.png"
    fake.write_text("not an image\n")
    (folder / "readme.txt").write_text("not an image suffix: not looked at\n")
    return [cut, fake]


def _skipped(err: str) -> dict:
    """``{file name: reason}`` of the CLI's "skipped" lines; every stderr line must be one."""
    out = {}
    for line in err.strip().splitlines():
        assert line.startswith("captum-leg: ") and ": skipped, " in line, line
        path, reason = line[len("captum-leg: "):].split(": skipped, ", 1)
        out[Path(path).name] = reason
    return out


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
        # options that would change nothing
        (["--lam", "0.3"], "--lam", "has no effect without --penalty tv"),
        (["--solver", "highs"], "--solver", "has no effect without --penalty tv"),
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
    ev = ["evaluate", str(tmp_path), "--out", str(tmp_path / "e")]
    line = _usage_error(capsys, ev + ["--lam", "0.1", "0.3"])
    assert "argument --lam: evaluate compares one LEG-TV map per method" in line
    line = _usage_error(capsys, ev + ["--methods", "leg", "lime", "--lam", "0.3"])
    assert line.endswith("argument --lam: has no effect without leg-tv in --methods")
    line = _usage_error(capsys, ev + ["--methods", "lime", "ig", "--grid-size", "7"])
    assert line.endswith("argument --grid-size: has no effect without leg or leg-tv in --methods")
    with pytest.raises(SystemExit) as e:  # options evaluate never used are gone
        main(ev + ["--penalty", "tv"])
    assert e.value.code == 2 and "unrecognized arguments: --penalty" in capsys.readouterr().err
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
    assert not out.exists()  # nothing finished: no files, not even an empty folder


def test_explain_skips_unreadable_files_and_explains_the_others(tmp_path, capsys):
    _images(tmp_path / "in", 1)
    _bad_files(tmp_path / "in")
    out = tmp_path / "out"
    assert main(_explain_args(tmp_path / "in", out)) == 1
    captured = capsys.readouterr()
    skipped = _skipped(captured.err)
    assert set(skipped) == {"cut.jpg", "notes.png"}  # readme.txt is not an image name
    assert skipped["cut.jpg"].startswith("cannot read the image: OSError")
    assert skipped["notes.png"].startswith("cannot read the image: UnidentifiedImageError")
    assert "explained 1 image(s)" in captured.out and "2 file(s) failed" in captured.out
    assert sorted(p.name for p in out.iterdir()) == ["img0.json", "img0.npy", "img0.png"]
    # a rerun keeps the finished image, reports the bad files again and fails again
    assert main(_explain_args(tmp_path / "in", out)) == 1
    captured = capsys.readouterr()
    assert set(_skipped(captured.err)) == {"cut.jpg", "notes.png"}
    assert "1 already done" in captured.out
    # only bad files: nothing written, not even the folder
    assert main(_explain_args(tmp_path / "in" / "cut.jpg", tmp_path / "none")) == 1
    assert set(_skipped(capsys.readouterr().err)) == {"cut.jpg"}
    assert not (tmp_path / "none").exists()


def test_explain_goes_on_when_the_model_fails_on_one_image(tmp_path, capsys):
    _images(tmp_path / "in", 2)
    _white(tmp_path / "in")
    out = tmp_path / "out"
    args = _explain_args(tmp_path / "in", out)
    args[args.index("--model") + 1] = f"{THIS}:picky_model"
    assert main(args) == 1  # the three images come in one batch, which fails as a whole
    captured = capsys.readouterr()
    assert _skipped(captured.err) == {"white.png": "the model failed on it: RuntimeError: cannot handle a bright image"}
    assert sorted(p.name for p in out.glob("*.npy")) == ["img0.npy", "img1.npy"]
    # the maps are those of a run without the white image (same seed, batch invariance)
    (tmp_path / "in" / "white.png").unlink()
    assert main(_explain_args(tmp_path / "in", tmp_path / "ref")) == 0
    for n in ("img0", "img1"):
        np.testing.assert_allclose(np.load(out / f"{n}.npy"), np.load(tmp_path / "ref" / f"{n}.npy"), rtol=1e-5, atol=1e-7)


def test_explain_stops_when_the_model_fails_on_every_image(tmp_path, capsys):
    for i in range(2):
        _white(tmp_path / "two", f"white{i}.png")
    args = _explain_args(tmp_path / "two", tmp_path / "out")
    args[args.index("--model") + 1] = f"{THIS}:picky_model"
    with pytest.raises(SystemExit) as e:
        main(args)
    assert "the model failed on all 2 images it was given" in str(e.value.code)
    assert "white0.png: RuntimeError: cannot handle a bright image" in str(e.value.code)
    assert not (tmp_path / "out").exists()
    capsys.readouterr()
    # many images: it stops after the first few instead of reporting each
    for i in range(8):
        _white(tmp_path / "eight", f"white{i}.png")
    args[args.index(str(tmp_path / "two"))] = str(tmp_path / "eight")
    with pytest.raises(SystemExit) as e:
        main(args + ["--batch-size", "1"])
    assert "failed on each of the first 5 images" in str(e.value.code)
    assert len(_skipped(capsys.readouterr().err)) == 5


def _evaluate_args(src, out, *extra):
    return [
        "evaluate", str(src), "--out", str(out), "--model", f"{THIS}:picky_model", "--normalize", "unit",
        "--image-size", "16", "--n-samples", "4", "--grid-size", "4", "--methods", "leg", "saliency",
        "--masks", "mean", "--key-grid", "coarse", "--sensitivity-steps", "2", "--no-progress", *extra,
    ]


def test_evaluate_skips_bad_files_and_images_the_model_fails_on(tmp_path, capsys):
    _images(tmp_path / "in", 2)
    _bad_files(tmp_path / "in")
    _white(tmp_path / "in")
    out = tmp_path / "ev"
    assert main(_evaluate_args(tmp_path / "in", out)) == 1
    captured = capsys.readouterr()
    skipped = _skipped(captured.err)
    assert set(skipped) == {"cut.jpg", "notes.png", "white.png"}
    assert skipped["white.png"] == "the model failed on it: RuntimeError: cannot handle a bright image"
    assert "evaluated 2 image(s)" in captured.out and "3 file(s) failed" in captured.out
    rows = list(csv.DictReader(open(out / "key_size_per_image.csv")))
    assert {r["image"] for r in rows} == {"img0", "img1"}
    assert {r["n_images"] for r in csv.DictReader(open(out / "key_size.csv"))} == {"2"}
    assert sorted(p.name for p in (out / "maps").rglob("*.npy")) == ["img0.npy", "img0.npy", "img1.npy", "img1.npy"]
    # nothing readable: a clear error and no folder
    both = _evaluate_args(tmp_path / "in" / "cut.jpg", tmp_path / "none")
    both.insert(2, str(tmp_path / "in" / "notes.png"))
    with pytest.raises(SystemExit, match="none of the 2 file"):
        main(both)
    assert not (tmp_path / "none").exists()
    # every image fails: the model's error, named
    with pytest.raises(SystemExit, match="the model failed on all 1 images.*white.png: RuntimeError"):
        main(_evaluate_args(tmp_path / "in" / "white.png", tmp_path / "none"))
    assert not (tmp_path / "none").exists()


def test_sanity_leaves_no_folder_when_it_fails(tmp_path, monkeypatch):
    import captum_leg.evaluation.digits as digits

    def no_data(*args, **kwargs):
        raise ImportError("the digits sanity check needs scikit-learn")

    monkeypatch.setattr(digits, "train_digits_cnn", no_data)
    with pytest.raises(ImportError, match="scikit-learn"):
        main(["sanity", "--out", str(tmp_path / "s")])
    assert not (tmp_path / "s").exists()


def test_model_module_is_imported_without_changing_sys_path(tmp_path, monkeypatch, capsys):
    # MODULE:CALLABLE found in the working directory, whose factory imports a sibling module
    (tmp_path / "leg_user_models.py").write_text(
        "def build():\n    from leg_user_layers import make\n    return make()\n"
    )
    (tmp_path / "leg_user_layers.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "def make():\n    with torch.random.fork_rng(devices=[]):\n"
        "        return nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))\n"
    )
    for name in ("leg_user_models", "leg_user_layers"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    _images(tmp_path / "in", 1)
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    args = _explain_args(tmp_path / "in", tmp_path / "out")
    args[args.index("--model") + 1] = "leg_user_models:build"
    try:
        assert main(args) == 0
        assert sys.path == before
    finally:
        for name in ("leg_user_models", "leg_user_layers"):
            sys.modules.pop(name, None)
    assert (tmp_path / "out" / "img0.npy").exists()


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
    assert (args.estimator, args.sampling, args.target_precision) == ("ridge", "orthogonal", None)
    assert "1000" in p._subparsers._group_actions[0].choices["explain"].format_help()
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
    # every key size is a fraction the coarse grid tries (or 1: never changes), and the
    # summary is the mean and median of the per-image values
    from captum_leg.evaluation import COARSE_KEY_FRACTIONS

    tried = set(np.round(COARSE_KEY_FRACTIONS, 6)) | {1.0}
    per_image = list(csv.DictReader(open(out / "key_size_per_image.csv")))
    assert len(per_image) == 2 * len(rows)
    for r in rows:
        ks = [float(p["key_size"]) for p in per_image if (p["method"], p["mask"]) == (r["method"], r["mask"])]
        assert len(ks) == 2 and set(np.round(ks, 6)) <= tried, ks
        assert float(r["mean"]) == pytest.approx(np.mean(ks)) and float(r["median"]) == pytest.approx(min(ks))
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
    assert len(lines) == 3 + 4  # columns, rule, floor row, four randomised layers
    # the table renders: "|" inside a cell is escaped, so every row has the 7 columns
    assert _markdown_cells(lines[0]) == ["randomised up to"] + [
        f"{m} {r}" for m in ("LEG", "LEG-TV", "gradient") for r in ("rho", "|rho|")
    ]
    assert all(len(_markdown_cells(l)) == 7 for l in lines)
    rows = list(csv.DictReader(open(out / "sanity.csv")))
    assert [r["randomised up to"] for r in rows] == ["(seed-to-seed noise floor)", "fc2", "fc1", "conv2", "conv1"]
    # the gradient is deterministic: two seeds give the same map; LEG at n = 30 is not
    assert float(rows[0]["gradient rho"]) == pytest.approx(1.0, abs=1e-12)
    assert float(rows[0]["LEG rho"]) < 0.99 and float(rows[0]["LEG-TV |rho|"]) < 0.99
    assert (out / "sanity.png").stat().st_size > 1000


def _markdown_cells(line: str) -> list:
    """The cells of a Markdown table row: split at unescaped "|", then unescaped."""
    import re

    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def test_demo_runs_and_reports(tmp_path, capsys, monkeypatch):
    pytest.importorskip("skimage")
    pytest.importorskip("efficientnet_lite_pytorch")
    from matplotlib.collections import LineCollection

    from captum_leg import cli
    from captum_leg.cli import demo

    monkeypatch.setattr(demo, "IG_STEPS", 2)  # keep the test fast
    figures = []
    real = cli._save_figure

    def keep(fig, path, *a, **k):
        figures.append(fig)
        real(fig, path, *a, **k)

    monkeypatch.setattr(cli, "_save_figure", keep)
    out = tmp_path / "demo.png"
    assert main(["demo", "--out", str(out), "--n-samples", "4"]) == 0
    log = capsys.readouterr().out
    assert "predicted class" in log and str(out.resolve()) in log
    # each method's cost: LEG's 3 channels x 4 samples, IG's steps forward and backward
    rows = {line[:34].strip(): line[34:].split() for line in log.splitlines()}
    assert rows["LEG and LEG-TV (lam 0.1, 0.3)"][:2] == ["12", "0"]
    assert rows["IntegratedGradients (2 steps)"][:2] == ["2", "2"]
    assert "|LEG / SE| > 2" not in log
    found = re.search(r"(\d+) of 196 cells of the channels' sum are non-zero at a false-discovery rate of 5%", log)
    assert found, log
    assert out.stat().st_size > 5000
    # photo | LEG with its significant cells outlined | LEG-TV 0.1 | LEG-TV 0.3 | IG, on the photo
    (fig,) = figures
    axes = [ax for ax in fig.axes if ax.get_visible()]
    titles = [ax.get_title() for ax in axes]
    assert len(axes) == 5 and titles[0] == "photo"
    assert f"{found.group(1)} of 196 cells outlined" in titles[1]
    assert "LEG-TV λ=0.1" in titles[2] and "LEG-TV λ=0.3" in titles[3] and "IntegratedGradients" in titles[4]
    assert [sum(isinstance(c, LineCollection) for c in ax.collections) for ax in axes] == [0, 1, 0, 0, 0]
    assert all(len(ax.get_images()) == 2 for ax in axes[1:])  # the map over the photo
