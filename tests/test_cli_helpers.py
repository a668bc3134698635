"""The rooms behind the ``captum-leg`` command, as units: output persistence (atomic
writes, settings beside each map, the map cache), torchrun sharding, model import, usage
errors and per-file failures. tests/test_cli.py runs the commands end to end."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from captum_leg.cli.checks import UsageError, is_usage_error, option_in_error
from captum_leg.cli.console import batched
from captum_leg.cli.failures import FileFailures
from captum_leg.cli.model import load_model
from captum_leg.cli.outputs import MapCache, atomic_save, atomic_write, stale, write_map_set, write_table
from captum_leg.cli.sharding import Shard, pick_device


def _leftovers(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


# ---------------------------------------------------------------------------------------
# atomic writes
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_atomic_save_keeps_the_old_file_when_a_write_fails(tmp_path, exc):
    target = tmp_path / "a.bin"
    atomic_write(target, b"old")

    def half_then_fail(fh):
        fh.write(b"half")
        raise exc

    with pytest.raises(type(exc)):
        atomic_save(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []
    atomic_save(target, lambda fh: fh.write(b"new"))
    assert target.read_bytes() == b"new" and _leftovers(tmp_path) == []


def test_write_table_csv_round_trips_and_markdown_escapes_bars(tmp_path):
    rows = [{"name": "LEG |rho|", "value": 0.12345, "n": 3}, {"name": "b", "value": 1.0, "n": 4}]
    write_table(tmp_path / "t.csv", tmp_path / "t.md", rows, "Header line.\n")
    assert list(csv.DictReader(open(tmp_path / "t.csv"))) == [
        {"name": "LEG |rho|", "value": "0.12345", "n": "3"}, {"name": "b", "value": "1.0", "n": "4"}
    ]
    md = (tmp_path / "t.md").read_text().splitlines()
    assert md == ["Header line.", "", "| name | value | n |", "|---|---|---|",
                  "| LEG \\|rho\\| | 0.123 | 3 |", "| b | 1.000 | 4 |"]


# ---------------------------------------------------------------------------------------
# explain's map sets and their settings
# ---------------------------------------------------------------------------------------
class _Figure:
    """Stands for a matplotlib figure: ``savefig`` writes a few bytes."""

    def savefig(self, fh, **kwargs):
        fh.write(b"png")


def _save_figure(fig, path, dpi=100, tight=True):
    atomic_save(path, lambda fh: fig.savefig(fh))


def test_stale_says_why_outputs_are_recomputed(tmp_path):
    settings = {"image_sha1": "aa", "grid_size": 4, "seed": 0}
    assert stale(tmp_path, "img", settings) == ""  # nothing yet
    write_map_set(tmp_path, "img", np.zeros(3), _Figure(), settings, _save_figure)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.json", "img.npy", "img.png"]
    assert json.loads((tmp_path / "img.json").read_text()) == {"settings": settings}
    assert stale(tmp_path, "img", dict(settings)) is None
    changed = {"image_sha1": "bb", "grid_size": 2, "seed": 0, "lam": [0.1]}
    assert stale(tmp_path, "img", changed) == "settings changed (image file changed, grid_size 4 -> 2, lam null -> [0.1])"
    assert stale(tmp_path, "img", {"grid_size": 4, "seed": 0}) == "settings changed (image file changed)"
    (tmp_path / "img.json").write_text("{not json")
    assert stale(tmp_path, "img", settings) == "its settings file is unreadable"
    (tmp_path / "img.json").unlink()
    assert stale(tmp_path, "img", settings) == "no settings stored with it"
    (tmp_path / "img.png").unlink()
    assert stale(tmp_path, "img", settings) == ""


def test_interrupted_rewrite_of_a_map_set_leaves_none_of_it(tmp_path):
    settings = {"seed": 0}
    write_map_set(tmp_path, "img", np.ones(3), _Figure(), settings, _save_figure)

    def interrupted(fig, path, **kw):  # Ctrl-C half-way through the picture
        def half(fh):
            fh.write(b"half")
            raise KeyboardInterrupt

        atomic_save(path, half)

    with pytest.raises(KeyboardInterrupt):
        write_map_set(tmp_path, "img", np.zeros(3), _Figure(), {"seed": 1}, interrupted)
    # neither the new set nor the old one survives half-replaced: the rerun recomputes it
    assert list(tmp_path.iterdir()) == []
    assert stale(tmp_path, "img", settings) == ""


def test_write_map_set_makes_its_folder_only_when_writing(tmp_path):
    out = tmp_path / "deep" / "out"
    assert stale(out, "img", {}) == "" and not out.exists()
    write_map_set(out, "img", np.arange(4.0), _Figure(), {}, _save_figure)
    np.testing.assert_array_equal(np.load(out / "img.npy"), np.arange(4.0))


# ---------------------------------------------------------------------------------------
# evaluate's map cache
# ---------------------------------------------------------------------------------------
def test_map_cache_is_named_by_its_settings_and_returns_what_it_stored(tmp_path):
    key = repr(("leg", "model", 16))
    cache = MapCache(tmp_path, "leg", key)
    assert cache.folder == tmp_path / f"leg_{hashlib.sha1(key.encode()).hexdigest()[:10]}"
    assert cache.load(["a"], torch.device("cpu")) is None and not cache.folder.exists()
    a, b = torch.randn(3, 4, 4), torch.randn(3, 4, 4)
    cache.store("a", a)
    assert (cache.folder / "settings.txt").read_text() == key + "\n"
    assert cache.load(["a", "b"], torch.device("cpu")) is None  # all or nothing
    cache.store("b", b)
    got = cache.load(["b", "a"], torch.device("cpu"))
    assert got is not None and torch.equal(got[0], b) and torch.equal(got[1], a)
    other = MapCache(tmp_path, "leg", repr(("leg", "model", 32)))
    assert other.folder != cache.folder and other.load(["a"], torch.device("cpu")) is None
    assert _leftovers(cache.folder) == []


# ---------------------------------------------------------------------------------------
# torchrun sharding and devices
# ---------------------------------------------------------------------------------------
def test_shard_from_torchrun_environment():
    assert Shard.from_env({}) == Shard(0, 1, 0) and Shard.from_env({}).tag == ""
    s = Shard.from_env({"RANK": "2", "WORLD_SIZE": "4"})
    assert (s.rank, s.world, s.local_rank, s.tag) == (2, 4, 2, "[rank 2/4] ")  # LOCAL_RANK defaults to RANK
    assert Shard.from_env({"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}).local_rank == 1
    with pytest.raises(SystemExit, match="RANK=4 outside WORLD_SIZE=4"):
        Shard.from_env({"RANK": "4", "WORLD_SIZE": "4"})


@pytest.mark.parametrize("n, world", [(0, 1), (1, 3), (7, 1), (7, 3), (10, 4), (3, 5)])
def test_shards_split_the_items_once_each_in_order(n, world):
    items = [f"img{i}" for i in range(n)]
    shares = [Shard(r, world).take(items) for r in range(world)]
    assert sorted(sum(shares, [])) == sorted(items)  # every item, once
    for r, share in enumerate(shares):
        assert share == [items[i] for i in range(r, n, world)]
    assert max(map(len, shares)) - min(map(len, shares)) <= 1  # balanced


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(UsageError, match="argument --device: "):
        pick_device("nonsense")
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        assert pick_device(None, local_rank=n + 1) == torch.device("cuda", (n + 1) % n)
    else:
        assert pick_device(None, local_rank=3) == torch.device("cpu")
        with pytest.raises(UsageError, match="CUDA is not available"):
            pick_device("cuda:0")


def test_batched_keeps_order_and_sizes():
    assert batched(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert batched([], 2) == []


# ---------------------------------------------------------------------------------------
# model import
# ---------------------------------------------------------------------------------------
def test_load_model_restores_sys_path_when_the_factory_fails(tmp_path, monkeypatch):
    (tmp_path / "leg_failing_models.py").write_text(
        "def build():\n    raise RuntimeError('no weights here')\n\ndef nothing():\n    return 3\n"
    )
    monkeypatch.delitem(sys.modules, "leg_failing_models", raising=False)
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    try:
        with pytest.raises(RuntimeError, match="no weights here"):
            load_model("leg_failing_models:build", torch.device("cpu"))
        assert sys.path == before
        with pytest.raises(UsageError, match="returned int, not a model"):
            load_model("leg_failing_models:nothing", torch.device("cpu"))
        assert sys.path == before
    finally:
        sys.modules.pop("leg_failing_models", None)


def test_load_model_from_a_file_returns_an_eval_module(tmp_path):
    path = tmp_path / "factory.py"
    path.write_text("from torch import nn\n\ndef build():\n    return nn.Sequential(nn.Dropout(0.5), nn.Flatten())\n")
    model = load_model(f"{path}:build", torch.device("cpu"))
    assert isinstance(model, torch.nn.Module) and not model.training
    x = torch.ones(2, 3)
    assert torch.equal(model(x), x)  # dropout is off in eval mode
    with pytest.raises(UsageError, match="cannot load"):
        load_model(f"{tmp_path / 'missing.py'}:build", torch.device("cpu"))


# ---------------------------------------------------------------------------------------
# usage errors and per-file failures
# ---------------------------------------------------------------------------------------
def test_errors_naming_an_argument_are_usage_errors_of_commands_with_that_option():
    with_noise = argparse.Namespace(noise_level=0.1)
    err = ValueError("noise_level: expected a number > 0, got -1")
    assert option_in_error(err, with_noise) == "--noise-level" and is_usage_error(err, with_noise)
    assert option_in_error(err, argparse.Namespace()) is None  # the command has no such option
    assert not is_usage_error(RuntimeError("noise_level: ..."), with_noise)  # only ValueError/TypeError
    assert not is_usage_error(ValueError("noise_levels are odd"), with_noise)
    assert is_usage_error(UsageError("--lam", "bad"), argparse.Namespace())


def test_each_alone_loses_only_the_items_that_fail(capsys):
    failures = FileFailures(is_fatal=lambda err: isinstance(err, KeyError))
    calls = []

    def run(items):
        calls.append([p.name for p, _ in items])
        if any(v < 0 for _, v in items):
            raise ValueError("negative")
        return [v * 10 for _, v in items]

    items = [(Path("a.png"), 1), (Path("b.png"), -1), (Path("c.png"), 2)]
    assert failures.each_alone(items, run) == [(items[0], 10), (items[2], 20)]
    assert calls == [["a.png", "b.png", "c.png"], ["a.png"], ["b.png"], ["c.png"]]
    assert capsys.readouterr().err == "captum-leg: b.png: skipped, the model failed on it: ValueError: negative\n"
    assert (len(failures), failures.exit_status) == (1, 1)
    assert FileFailures().exit_status == 0

    def fatal(items):
        raise KeyError("a bad option, not a bad file")

    with pytest.raises(KeyError):
        failures.each_alone(items, fatal)
    assert len(failures) == 1
