"""Which graphs each optimiser step sees: deterministic, shardable, resumable.

One step takes a *global batch* of ``batch_size`` graphs and splits it into ``parts`` equal
micro-batches. With ``W`` processes and ``A`` accumulation steps, ``parts = W * A`` and
rank ``r`` runs parts ``r*A .. r*A + A - 1``; the step's loss is the mean of the micro-batch
losses. The order depends only on ``(seed, epoch)``, so a run resumed at step ``k`` of an
epoch sees exactly the batches an uninterrupted run would, on any number of processes with
the same ``parts``.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from graphssl.core.errors import ConfigError


def epoch_order(block_sizes: Sequence[int], seed: int, epoch: int) -> np.ndarray:
    """A permutation of ``sum(block_sizes)`` indices: blocks in random order, each block's
    indices shuffled within it. With one block this is a plain shuffle; with on-disk shards as
    blocks, consecutive batches come from one shard, so a streaming reader holds one shard."""
    rng = np.random.default_rng([seed, epoch])
    starts = np.concatenate([[0], np.cumsum(block_sizes)]).astype(np.int64)
    pieces = [starts[b] + rng.permutation(int(block_sizes[b])) for b in rng.permutation(len(block_sizes))]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)


class StepSampler:
    """A batch sampler yielding this rank's micro-batches, step after step, for one epoch.

    ``start_step`` skips the first steps of the epoch without touching the data (resume).
    """

    def __init__(
        self,
        block_sizes: Sequence[int],
        batch_size: int,
        seed: int,
        epoch: int,
        rank: int = 0,
        world_size: int = 1,
        accumulate: int = 1,
        start_step: int = 0,
    ) -> None:
        self.parts = world_size * accumulate
        if batch_size < self.parts:
            raise ConfigError(f"pretrain.batch_size ({batch_size}) must be at least the number of micro-batches "
                              f"per step (world size {world_size} x accumulate {accumulate} = {self.parts})")
        self.block_sizes = list(block_sizes)
        self.batch_size = batch_size
        self.seed, self.epoch = seed, epoch
        self.rank, self.accumulate = rank, accumulate
        self.start_step = start_step
        total = int(sum(self.block_sizes))
        # a last global batch with fewer graphs than micro-batches would leave a rank idle: dropped
        full, rest = divmod(total, batch_size)
        self.steps = full + (1 if rest >= self.parts else 0)

    def __len__(self) -> int:
        return max(self.steps - self.start_step, 0) * self.accumulate

    def __iter__(self) -> Iterator[list[int]]:
        order = epoch_order(self.block_sizes, self.seed, self.epoch)
        for step in range(self.start_step, self.steps):
            parts = np.array_split(order[step * self.batch_size:(step + 1) * self.batch_size], self.parts)
            for a in range(self.accumulate):
                yield parts[self.rank * self.accumulate + a].tolist()
