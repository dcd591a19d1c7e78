"""One random stream per micro-batch slot, so masks and noise do not depend on how a step is
spread over processes: slot ``p`` draws the same numbers on rank ``p`` of a 2-process run as
in accumulation step ``p`` of a single process."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


class MicroBatchStreams:
    """The torch RNG state (CPU, and CUDA when used) of each of ``parts`` micro-batch slots."""

    def __init__(self, seed: int, parts: int, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self.cpu = [torch.Generator().manual_seed(seed * 1_000_003 + 17 + p).get_state() for p in range(parts)]
        self.gpu: list[torch.Tensor] = []
        if self.cuda:
            for p in range(parts):
                generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + 17 + p)
                self.gpu.append(generator.get_state())

    @contextmanager
    def use(self, part: int) -> Iterator[None]:
        """Run the body with slot ``part``'s random state and keep where it ends."""
        outer_cpu = torch.get_rng_state()
        outer_gpu = torch.cuda.get_rng_state(self.device) if self.cuda else None
        torch.set_rng_state(self.cpu[part])
        if self.cuda:
            torch.cuda.set_rng_state(self.gpu[part], self.device)
        try:
            yield
        finally:
            self.cpu[part] = torch.get_rng_state()
            torch.set_rng_state(outer_cpu)
            if self.cuda:
                self.gpu[part] = torch.cuda.get_rng_state(self.device)
                torch.cuda.set_rng_state(outer_gpu, self.device)

    def state(self, parts: list[int]) -> dict[int, dict[str, torch.Tensor]]:
        return {p: {"cpu": self.cpu[p], **({"cuda": self.gpu[p]} if self.cuda else {})} for p in parts}

    def load(self, states: dict[int, dict[str, torch.Tensor]]) -> None:
        for p, s in states.items():
            self.cpu[int(p)] = s["cpu"]
            if self.cuda and "cuda" in s:
                self.gpu[int(p)] = s["cuda"]
