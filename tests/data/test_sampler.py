"""Step sampling: deterministic, shardable, resumable batches."""

from __future__ import annotations

import numpy as np
import pytest

from graphssl.core.errors import ConfigError
from graphssl.data.sampler import StepSampler, epoch_order

# ----------------------------------------------------------------------------- sampling

def test_epoch_order_keeps_blocks_together_and_depends_only_on_seed_and_epoch():
    sizes = [5, 3, 4]
    order = epoch_order(sizes, seed=1, epoch=0)
    assert sorted(order.tolist()) == list(range(12))
    starts = [0, 5, 8, 12]
    block_of = np.searchsorted(starts, order, side="right") - 1
    assert (np.diff(block_of) != 0).sum() == 2  # each block is visited in one stretch
    assert np.array_equal(order, epoch_order(sizes, seed=1, epoch=0))
    assert not np.array_equal(order, epoch_order(sizes, seed=1, epoch=1))


def test_step_sampler_splits_each_global_batch_over_ranks_and_accumulation():
    sizes, batch = [37], 8
    single = list(StepSampler(sizes, batch, seed=3, epoch=2, accumulate=4))
    ranks = [list(StepSampler(sizes, batch, seed=3, epoch=2, rank=r, world_size=2, accumulate=2)) for r in range(2)]
    # rank r runs micro-batches 2r, 2r+1 of every step: the same parts as 4-fold accumulation
    steps = len(single) // 4
    assert steps == 5 and len(ranks[0]) == len(ranks[1]) == 2 * steps
    for s in range(steps):
        assert single[4 * s:4 * s + 2] == ranks[0][2 * s:2 * s + 2]
        assert single[4 * s + 2:4 * s + 4] == ranks[1][2 * s:2 * s + 2]
    seen = [i for part in single for i in part]
    assert len(seen) == len(set(seen)) == 37  # last global batch has 5 >= 4 graphs: kept
    resumed = list(StepSampler(sizes, batch, seed=3, epoch=2, accumulate=4, start_step=3))
    assert resumed == single[12:]


def test_step_sampler_refuses_batches_smaller_than_the_number_of_parts():
    with pytest.raises(ConfigError, match="at least the number of micro-batches"):
        StepSampler([10], 3, seed=0, epoch=0, world_size=2, accumulate=2)
