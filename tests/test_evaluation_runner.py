"""The resumable photo-by-photo runner, the forward counter, bootstrap summaries and tables."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from captum_leg.evaluation import MethodSpec, bootstrap_interval, build_method, summarize
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
from captum_leg.evaluation.tables import flat_rows, markdown_table, summary_rows, timing_rows, wide_rows
from captum_leg.evaluation.tables import paired_rows, wide_paired_rows
from conftest import benchmark_script


class Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = nn.Parameter(torch.randn(3, 3 * 8 * 8, generator=g))

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.w.T


def photos(n: int):
    def loader(i: int):
        return lambda: torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(i))

    return [Photo(f"p{i}", loader(i)) for i in range(n)]


class FakeMethod:
    """A method that spends 4 forward passes and returns the input as its map."""

    def __init__(self, counter: ForwardCounter, version: int = 1):
        self.calls, self.counter = 0, counter
        self.spec = MethodSpec("fake", 4, dict(version=version), self)

    def __call__(self, x: Tensor, t: Tensor, seed=None) -> Tensor:
        self.calls += 1
        self.counter(x.expand(4, -1, -1, -1))
        return x.clone()


def simple_metrics(model, x, target, a):
    return {"sum": float(a.sum()), "curve": [0.0, float(a.mean())]}


def test_forward_counter_counts_forwards_and_backwards():
    counter = ForwardCounter(Linear())
    x = torch.rand(5, 3, 8, 8)
    with torch.no_grad():
        counter(x)
    assert (counter.forward_rows, counter.backward_rows) == (5, 0)
    y = counter(x.requires_grad_())
    y[:, 0].sum().backward()
    assert (counter.forward_rows, counter.backward_rows, counter.forward_equivalents) == (10, 5, 20)
    counter.reset()
    assert counter.forward_equivalents == 0
    p = with_softmax(Linear())
    torch.testing.assert_close(p(x).sum(1), torch.ones(5))


def test_runner_resumes_where_it_stopped(tmp_path):
    counter = ForwardCounter(Linear())
    method = FakeMethod(counter)
    store = RecordStore(tmp_path, dict(budget=4))
    seen = []

    def failing(model, x, target, a):  # stops the run on the third photo
        seen.append(1)
        if len(seen) == 3:
            raise KeyboardInterrupt
        return simple_metrics(model, x, target, a)

    with pytest.raises(KeyboardInterrupt):
        run_methods(photos(4), {"fake": method.spec}, counter, failing, store)
    assert method.calls == 3 and [r["photo"] for r in store.records()] == ["p0", "p1"]
    # a torn line (a stop while writing) is ignored
    with open(store.path, "a") as fh:
        fh.write('{"photo": "p2", "ca')
    again = RecordStore(tmp_path, dict(budget=4))
    assert run_methods(photos(4), {"fake": method.spec}, counter, simple_metrics, again) == 2
    assert method.calls == 5  # only p2 and p3 were computed
    records = current_records(again, {"fake": method.spec})
    assert sorted(r["photo"] for r in records) == ["p0", "p1", "p2", "p3"]
    r = records[-1]
    assert (r["cost"], r["forward_rows"], r["forward_equivalents"], r["backward_rows"]) == (4, 4, 4, 0)
    x3 = photos(4)[3].load()
    assert r["maps"]["fake"]["sum"] == pytest.approx(float(x3.sum()))
    assert r["target"] == int(Linear()(x3).argmax())
    # nothing left to do; a change of the method's settings recomputes it
    assert run_methods(photos(4), {"fake": method.spec}, counter, simple_metrics, again) == 0
    v2 = FakeMethod(counter, version=2)
    assert run_methods(photos(2), {"fake": v2.spec}, counter, simple_metrics, again) == 2
    assert len(current_records(again, {"fake": v2.spec})) == 2
    assert len(current_records(again, {"fake": method.spec}, photos=["p0"])) == 1


def test_record_store_refuses_other_settings(tmp_path):
    RecordStore(tmp_path, dict(budget=4, scale="logit"))
    with pytest.raises(ValueError, match="budget"):
        RecordStore(tmp_path, dict(budget=8, scale="logit"))
    assert json.loads((tmp_path / "run.json").read_text()) == dict(budget=4, scale="logit")


def test_paper_metrics_of_one_map_and_tables(tmp_path):
    counter = ForwardCounter(with_softmax(Linear()))
    specs = {n: build_method(n, counter, 24, grid_size=4, feature_grid=4, noise_level=0.05) for n in ("leg", "random")}
    metrics = PaperMetrics(pixel_space="unit", curve_points=5, key_fractions=(0.25, 0.5, 1.0))
    store = RecordStore(tmp_path, dict(metrics=metrics.settings()))
    run_methods(photos(3), specs, counter, metrics, store)
    records = current_records(store, specs)
    assert len(records) == 6
    values = records[0]["maps"]["leg"]
    assert set(values) == {"key_mean", "key_black", "key_white", "key_noise", "key_shift", "deletion_auc",
                           "insertion_auc", "deletion", "insertion", "sensitivity"}
    assert all(values[f"key_{m}"] in (0.25, 0.5, 1.0) for m in ("mean", "black", "white", "noise", "shift"))
    assert len(values["deletion"]) == 5 and len(values["sensitivity"]) == 11
    # probabilities: the curves' first points are the unmasked probability of the class
    x0 = photos(1)[0].load()
    with torch.no_grad():
        p0 = float(with_softmax(Linear())(x0).max())
    assert values["deletion"][0] == pytest.approx(p0) and values["sensitivity"][0] == pytest.approx(p0)
    assert values["insertion"][-1] == pytest.approx(p0)
    assert 0 <= values["deletion_auc"] <= 1 and 0 <= values["insertion_auc"] <= 1
    assert records[0]["metric_forward_rows"] > 0
    curves = numpy_curves(records, "deletion")
    assert curves["leg"].shape == (3, 5)
    rows = flat_rows(records)
    assert [r["method"] for r in rows].count("leg") == 3 and rows[0]["cost"] == 24
    summary = summary_rows(rows, ["deletion_auc"])
    leg = next(s for s in summary if s["method"] == "leg")
    auc = [r["deletion_auc"] for r in rows if r["method"] == "leg"]
    assert leg["n"] == 3 and leg["mean"] == pytest.approx(np.mean(auc)) and leg["median"] == pytest.approx(np.median(auc))
    assert leg["low"] <= leg["mean"] <= leg["high"]
    assert [t["method"] for t in timing_rows(records)] == ["leg", "random"]
    assert timing_rows(records)[0]["measured"] == 24.0


def test_bootstrap_interval_known_answers():
    # two values: resampled means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4
    assert bootstrap_interval([0.0, 1.0]) == (0.0, 1.0)
    assert bootstrap_interval([0.3, 0.3, 0.3]) == (0.3, 0.3)
    assert all(math.isnan(v) for v in bootstrap_interval([0.5]))
    # large samples: close to mean +- 1.96 sd / sqrt(n)
    v = np.random.default_rng(0).normal(2.0, 1.0, 400)
    low, high = bootstrap_interval(v)
    half = 1.96 * v.std(ddof=1) / 20
    assert low == pytest.approx(v.mean() - half, abs=0.1 * half) and high == pytest.approx(v.mean() + half, abs=0.1 * half)
    assert bootstrap_interval(v, seed=1) != (low, high)  # resampling is random...
    assert bootstrap_interval(v, seed=0) == (low, high)  # ...and seeded
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval(v, level=95)
    with pytest.raises(ValueError, match="finite"):
        bootstrap_interval([1.0, float("nan")])


def test_bootstrap_interval_covers_the_mean():
    rng = np.random.default_rng(1)
    hits = sum(low <= 0.0 <= high for low, high in (bootstrap_interval(rng.normal(0, 1, 30), n_resamples=2000, seed=i)
                                                    for i in range(200)))
    assert 0.88 <= hits / 200 <= 0.99, hits


def test_summaries_and_markdown():
    s = summarize([1.0, 2.0, 6.0])
    assert (s["n"], s["mean"], s["median"]) == (3, 3.0, 2.0) and 1.0 <= s["low"] < s["high"] <= 6.0
    assert summarize([])["n"] == 0
    rows = [dict(method="a", m=1.0), dict(method="a", m=3.0), dict(method="b", m=2.0)]
    summary = summary_rows(rows, ["m"])
    assert [(r["method"], r["mean"], r["n"]) for r in summary] == [("a", 2.0, 2), ("b", 2.0, 1)]
    wide = wide_rows(summary, ["m"], costs={"a": 7})
    assert wide[0]["m"] == "2.000 (2.000) [1.000, 3.000]" and wide[0]["cost"] == 7
    assert wide[1]["m"] == "2.000 (2.000)"  # one photo: no interval
    table = markdown_table([dict(x="a|b", y=0.5)])
    assert table.splitlines() == ["| x | y |", "|---|---|", "| a\\|b | 0.500 |"]


def test_block_layers_and_block_reinitialisation():
    from captum_leg.evaluation import block_layers, reinitialize

    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(0)
        net = nn.Module()
        net.stem = nn.Conv2d(3, 4, 3)
        net.blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4)) for _ in range(3)])
        net.act = nn.ReLU()
        net.head = nn.Linear(4, 2)
    assert block_layers(net) == ["head", "blocks.2", "blocks.1", "blocks.0", "stem"]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    block = net.blocks[1]
    block[1].weight.data.fill_(3.0)  # BatchNorm's reset sets it back to 1
    reinitialize(block, seed=4)  # a container: every parameterised layer inside it
    assert torch.equal(block[1].weight, torch.ones(4))
    assert not torch.equal(block[0].weight, before["blocks.1.0.weight"])
    for k, v in net.state_dict().items():  # nothing outside the block changed
        if not k.startswith("blocks.1."):
            assert torch.equal(v, before[k]), k
    again = {k: v.clone() for k, v in block.state_dict().items()}
    reinitialize(block, seed=4)
    for k, v in block.state_dict().items():  # reproducible
        assert torch.equal(v, again[k]), k
    with pytest.raises(ValueError, match="no module"):
        block_layers(nn.ReLU())


def test_paper_eval_variants_change_only_the_leg_methods():
    # --noise-level and --grid-size are LEG variants: the peers keep their own settings.
    counter = ForwardCounter(Linear())
    specs = benchmark_script("paper_eval").build_specs(["leg", "leg-tv-path", "lime"], counter, 120, [0.1],
                                      noise_level=0.2, grid_size=2)
    for name in ("leg", "leg-tv-path"):
        assert specs[name].settings["noise_level"] == 0.2 and specs[name].settings["grid_size"] == 2
    assert specs["lime"].settings.get("noise_level") is None and specs["lime"].settings.get("grid_size") is None
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    leg_map = specs["leg"](x, torch.tensor([0]), 0)
    # a 2 x 2 grid: each channel's map is constant on 4 x 4 blocks
    blocks = leg_map.reshape(3, 2, 4, 2, 4)
    assert torch.allclose(blocks, blocks[:, :, :1, :, :1].expand_as(blocks))
    assert not torch.allclose(leg_map, leg_map.flatten()[0].expand_as(leg_map))


def test_paired_rows_compare_photo_by_photo_in_each_metric_direction():
    # photo effects are large, method differences small and consistent: pairing sees them
    rows = []
    for i, base in enumerate([0.1, 0.5, 0.9, 0.3]):
        rows.append(dict(photo=f"p{i}", method="leg", key_mean=base, insertion_auc=base + 0.02))
        rows.append(dict(photo=f"p{i}", method="peer", key_mean=base + 0.01 * (i != 3), insertion_auc=base))
    rows.append(dict(photo="p9", method="peer", key_mean=0.0, insertion_auc=0.0))  # unpaired: ignored
    out = {r["metric"]: r for r in paired_rows(rows, "leg", ["key_mean", "insertion_auc"],
                                                higher_is_better=["insertion_auc"])}
    key, ins = out["key_mean"], out["insertion_auc"]
    assert key["n"] == 4 and key["mean"] == pytest.approx(-0.0075)
    assert (key["wins"], key["ties"], key["losses"]) == (3, 1, 0)
    assert ins["mean"] == pytest.approx(0.02) and (ins["wins"], ins["losses"]) == (4, 0)
    assert key["high"] <= 0.0  # every resample's mean is <= 0: LEG is never worse
    cell = wide_paired_rows(list(out.values()), ["key_mean", "insertion_auc"])[0]
    assert cell["against"] == "peer" and cell["key_mean"].endswith("3/1/0")
    with pytest.raises(ValueError, match="reference"):
        paired_rows(rows, "lime", ["key_mean"])
