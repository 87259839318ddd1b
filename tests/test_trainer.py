"""Trainer pieces that need no training run: the epoch order, length bucketing, the schedule.
(The training loop itself, resume after kill -9 and MirroredStrategy: tests/test_train_main.py.)"""
import numpy as np
import pytest

from prado_tiny.trainer import WarmupCosine, epoch_batches, epoch_order


def test_epoch_order_is_a_function_of_seed_and_epoch():
    a = epoch_order(3, 7, 100)
    assert np.array_equal(a, epoch_order(3, 7, 100))
    assert sorted(a.tolist()) == list(range(100))
    assert not np.array_equal(a, epoch_order(3, 8, 100))
    assert not np.array_equal(a, epoch_order(4, 7, 100))


@pytest.mark.parametrize("window", [0, 1, 5])
def test_epoch_batches_cover_every_example_once(window):
    lengths = np.random.default_rng(0).integers(1, 60, 1001)
    batches = epoch_batches(0, 2, lengths, 32, window)
    flat = np.concatenate(batches)
    assert len(flat) == 1001 and len(set(flat.tolist())) == 1001
    assert all(len(b) == 32 for b in batches[:-1])
    assert [x.tolist() for x in batches] == [x.tolist() for x in epoch_batches(0, 2, lengths, 32, window)]


def test_bucketing_pads_less_and_keeps_batches_shuffled():
    lengths = np.random.default_rng(1).integers(1, 60, 5000)
    pad = lambda bs: np.mean([lengths[b].max() - lengths[b].mean() for b in bs])  # noqa: E731
    plain, bucketed = epoch_batches(0, 0, lengths, 64, 0), epoch_batches(0, 0, lengths, 64, 20)
    assert pad(bucketed) < pad(plain) / 5
    # Batches are not in length order: the first batches are not all the shortest ones.
    firsts = [lengths[b].mean() for b in bucketed[:10]]
    assert max(firsts) - min(firsts) > 5


def test_warmup_cosine_schedule():
    s = WarmupCosine(1e-3, warmup=10, total=110, floor=0.1)
    v = [float(s(i)) for i in (0, 9, 10, 60, 110, 500)]
    assert v[0] == pytest.approx(1e-4)
    assert v[1] == pytest.approx(1e-3)
    assert v[2] == pytest.approx(1e-3)
    assert v[3] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5), rel=1e-5)
    assert v[4] == pytest.approx(1e-4) and v[5] == pytest.approx(1e-4)
    assert WarmupCosine(**s.get_config()).get_config() == s.get_config()
