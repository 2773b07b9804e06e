import pytest
import torch

from conftest import tiny_splits
from earlyreadout.data import DATASETS, BatchLoader, load_splits
from earlyreadout.data.synthetic.spurious_text import NEGATION, VOCAB
from earlyreadout.params import resolve


@pytest.mark.parametrize("name", ["colored-digits", "dominoes", "spurious-text"])
def test_generation_is_deterministic_and_seeded(name):
    a, b = tiny_splits(name), tiny_splits(name)
    c = tiny_splits(name, seed=1)
    for split in ("train", "val", "test"):
        assert torch.equal(a[split].tensors(), b[split].tensors())
        assert torch.equal(a[split].y, b[split].y) and torch.equal(a[split].a, b[split].a)
    assert not torch.equal(a["train"].tensors(), c["train"].tensors())


@pytest.mark.parametrize("name", ["colored-digits", "dominoes", "spurious-text"])
def test_train_is_correlated_and_eval_is_group_balanced(name):
    opts, _ = resolve(DATASETS.get(name).options, {"n_train": 4000, "n_val": 400, "n_test": 400,
                                                   "correlation": 0.9}, name)
    splits = load_splits(name, opts)
    counts = splits["train"].group_counts().float()
    minority = counts.sort().values[:2].sum() / counts.sum()
    assert 0.07 < minority < 0.13  # 1 - correlation
    for split in ("val", "test"):
        assert splits[split].group_counts().tolist() == [100, 100, 100, 100]


def test_text_attribute_is_the_negation_token():
    d = tiny_splits("spurious-text")["train"]
    negation_ids = {VOCAB.index[w] for w in NEGATION}
    has_negation = torch.tensor([bool(set(row.tolist()) & negation_ids) for row in d.x])
    assert torch.equal(has_negation.long(), d.a)


def test_group_names_and_lookup(digits_splits):
    d = digits_splits["train"]
    assert d.group_names == ["y=<5, a=red", "y=<5, a=green", "y=>=5, a=red", "y=>=5, a=green"]
    assert d.group_of(2) == (1, 0)
    assert torch.equal(d.g, d.y * 2 + d.a)


def test_loader_order_depends_only_on_seed_and_epoch(digits_splits):
    d = digits_splits["train"]
    l1 = BatchLoader(d, 16, shuffle=True, seed=3)
    l2 = BatchLoader(d, 16, shuffle=True, seed=3)
    l1.set_epoch(2)
    l2.set_epoch(2)
    assert torch.equal(l1.order(), l2.order())
    l2.set_epoch(3)
    assert not torch.equal(l1.order(), l2.order())
    batches = list(l1)
    assert len(batches) == len(l1) == 6
    assert torch.equal(torch.cat([b["idx"] for b in batches]).sort().values, torch.arange(len(d)))
    b = batches[0]
    assert torch.equal(b["x"], d.x[b["idx"]]) and torch.equal(b["g"], d.g[b["idx"]])


def test_loader_shards_cover_the_epoch(digits_splits):
    d = digits_splits["train"]
    shards = [BatchLoader(d, 16, shuffle=True, seed=0, rank=r, world_size=2).order() for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == len(d) // 2
    assert torch.equal(torch.cat(shards).sort().values, torch.arange(len(d)))


def test_sample_weights_oversample(digits_splits):
    d = digits_splits["train"]
    loader = BatchLoader(d, 16, seed=0)
    w = torch.zeros(len(d))
    w[:3] = 1.0
    loader.set_sample_weights(w)
    assert set(loader.order().tolist()) <= {0, 1, 2}
    with pytest.raises(ValueError):
        loader.set_sample_weights(torch.ones(3))
