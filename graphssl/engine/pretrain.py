"""Pretraining: a data set, an encoder, an objective and a plain torch loop."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import signal
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, Subset
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from graphssl.core.config import RunConfig, same_settings, save_config
from graphssl.core.errors import CheckpointError, RunInterrupted, TrainingDiverged
from graphssl.data.corpus import Corpus
from graphssl.data.dataset import PrecomputedDataset, load_dataset
from graphssl.data.sampler import StepSampler
from graphssl.engine.checkpoint import load_checkpoint, save_checkpoint
from graphssl.engine.curves import write_pretrain_curves
from graphssl.engine.distributed import World, join_world, main_first, rank_device
from graphssl.engine.pretrained import ENCODER_FORMAT
from graphssl.engine.runtime import (
    gradients_finite,
    nonfinite_tensors,
    prepare_cache,
    prepare_folder,
    resolve_device,
    seed_everything,
    set_threads,
    validate,
)
from graphssl.engine.streams import MicroBatchStreams
from graphssl.nn.batch_norm import batch_norms, reestimate_batch_norm
from graphssl.molecule.shards import ShardedDataset
from graphssl.nn import GraphEncoder, build_encoder, degree_histogram, is_geometric
from graphssl.objectives import Objective, build_objective


def encoder_from_config(config: RunConfig, dataset: Dataset, deg: torch.Tensor | None = None) -> GraphEncoder:
    """The encoder ``config.model`` names, sized for ``dataset`` (its ``feature_spec``; geometric
    backbones read atoms and positions and need none)."""
    if is_geometric(config.model.backbone):
        return build_encoder(config.model, cutoff=config.data.cutoff)
    if config.model.backbone.lower() == "pna" and deg is None:
        deg = degree_histogram(dataset)
    return build_encoder(config.model, dataset.feature_spec, deg=deg)


# what a resumed run must share with the saved one unless pretrain.resume is "force": the same
# weights would otherwise continue under another recipe without anyone having asked for it
_RECIPE = ("batch_size", "lr", "weight_decay")


def _check_same_run(saved: dict[str, Any], config: RunConfig, path: Path) -> None:
    """Refuse to resume a run whose data, model or objective differ from the saved one, or (unless
    ``pretrain.resume`` is ``force``) whose batch size, learning rate, weight decay or seed do."""
    current, default = config.to_dict(), RunConfig().to_dict()
    changed = [key for key in ("data", "model", "objective")
               if not same_settings(saved.get(key), current[key], default[key])]
    if changed:
        raise CheckpointError(
            f"'{path}' was written by a run with different {', '.join(changed)} settings; use another "
            "output_dir, delete the file, or set pretrain.resume=false to start over"
        )
    if config.pretrain.resume == "force":
        return
    before, now = saved.get("pretrain") or {}, current["pretrain"]
    differs = [f"pretrain.{key} {before[key]!r} (now {now[key]!r})" for key in _RECIPE
               if key in before and before[key] != now[key]]
    if "seed" in saved and saved["seed"] != current["seed"]:
        differs.append(f"seed {saved['seed']!r} (now {current['seed']!r})")
    if differs:
        raise CheckpointError(
            f"'{path}' was written with {', '.join(differs)}; resuming would silently continue under the new "
            "settings: restore them, set pretrain.resume=force to continue anyway, or pretrain.resume=false to "
            "start over")


class _StopRequest:
    """Turns SIGTERM into a request to stop after the current step (the handler is restored
    on exit, and only installed from the main thread, where Python allows it)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "_StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


class _LazyTransform(Dataset):
    """Applies a per-graph transform on access: for streamed data sets too large to precompute."""

    def __init__(self, dataset, transform) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return self.transform(self.dataset[i])

    def __getattr__(self, name: str):
        # only reached for names this class lacks; guard the two it owns, which are missing
        # while an unpickled copy (a DataLoader worker's) is being rebuilt
        if name in ("dataset", "transform"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def _copy_buffers(module: torch.nn.Module) -> list[torch.Tensor]:
    return [b.detach().clone() for b in module.buffers()]


@torch.no_grad()
def _restore_buffers(module: torch.nn.Module, saved: list[torch.Tensor] | None) -> None:
    if saved is not None:
        for buffer, value in zip(module.buffers(), saved):
            buffer.copy_(value)


def _skip_advice(section: str, allowed: int, skipped: int, broken: bool) -> str:
    """The end of a divergence message: whether skipping the step could have helped."""
    if broken:
        return " (the weights are no longer finite, so skipping steps cannot help)"
    if allowed:
        return f" ({skipped - 1} such steps were skipped already, the most {section}.skip_nonfinite={allowed} allows)"
    return f", or set {section}.skip_nonfinite=N to skip up to N isolated such steps"


def _fingerprint(module: torch.nn.Module) -> torch.Tensor:
    """A per-parameter summary that differs when replicas differ (compared across ranks)."""
    return torch.stack([t.detach().double().cpu().sum() for t in [*module.parameters(), *module.buffers()]])


def pretrain(config: RunConfig, dataset: Dataset | None = None) -> Path:
    """Pretrain ``config.model`` with ``config.objective`` on ``config.data``.

    Writes ``last.pt`` (resumable state) every ``pretrain.checkpoint_every`` steps, at the end
    of every epoch and on SIGTERM, and ``encoder.pt`` (the pretrained encoder with its config
    and library versions) at the end, atomically, into ``config.output_dir``. Under
    ``torchrun`` each process trains on its share of every global batch and rank 0 writes the
    files. Returns the path of ``encoder.pt``.
    """
    validate(config, "pretrain", has_data=dataset is not None)  # before any process group or data
    world = join_world(config.device)
    path = _pretrain(config, dataset, world)
    # Only after a run every rank finished: destroying the group while another rank is still
    # raising out of (or inside) a collective can block this rank for good, and torchrun then
    # waits on it. On an error the group goes with the process.
    world.close()
    return path


def _pretrain(config: RunConfig, dataset, world: World) -> Path:
    set_threads(config.threads)
    seed_everything(config.seed)
    device = rank_device(world, resolve_device(config.device))
    run = config.pretrain
    show = config.progress and world.is_main
    out = Path(config.output_dir).expanduser()
    if world.is_main:
        out = prepare_folder(config.output_dir, "output_dir")
        if dataset is None:
            prepare_cache(config)  # before featurising: a bad cache_dir fails now, not after the build
        save_config(config, out / "config.yaml")
    if dataset is None:
        with main_first(world):  # rank 0 builds the on-disk cache, the others read it
            dataset = load_dataset(config.data, config.cache_dir, progress=show, verbose=world.is_main)

    deg = degree_histogram(dataset) if config.model.backbone.lower() == "pna" else None
    encoder = encoder_from_config(config, dataset, deg)
    objective: Objective = build_objective(config.objective.name, encoder, config.objective.options).to(device)
    optimizer = torch.optim.Adam(objective.parameters(), lr=run.lr, weight_decay=run.weight_decay)
    blocks = list(getattr(dataset, "shard_sizes", [len(dataset)]))
    clean = dataset  # the graphs as fine-tuning sees them: no transform, no masks
    transform = objective.transform
    if transform is not None and (isinstance(dataset, ShardedDataset) or getattr(dataset, "streamed", False)):
        dataset = _LazyTransform(dataset, transform)
    elif transform is not None:
        # Deterministic per-graph preprocessing (e.g. coarsening): done once, not every epoch.
        t0 = time.perf_counter()
        dataset = PrecomputedDataset(transform.many(dataset, progress=show), dataset)
        if show:
            print(f"{transform} applied to {len(dataset)} graphs in {time.perf_counter() - t0:.1f} s")

    parts = world.world_size * run.accumulate
    mine = list(range(world.rank * run.accumulate, (world.rank + 1) * run.accumulate))
    streams = MicroBatchStreams(config.seed, parts, device)
    epoch, epoch_step, step, history = 0, 0, 0, []
    totals = torch.zeros(3, dtype=torch.float64)  # loss x graphs, graphs, seconds of the current epoch
    skipped, epoch_skipped = 0, 0  # steps skipped for a non-finite loss or gradient: in the run, in this epoch
    last = out / "last.pt"
    saved_at: int | None = None  # the step of the state in last.pt
    if run.resume and last.is_file():
        state = load_checkpoint(last, map_location="cpu")
        _check_same_run(state.get("config", {}), config, last)
        if state.get("parts", 1) != parts and run.resume != "force":
            raise CheckpointError(
                f"'{last}' was written with {state.get('parts', 1)} micro-batches per step (processes x "
                f"pretrain.accumulate) and this run has {parts}; resume with the same product to get the same "
                "batches, set pretrain.resume=force to continue anyway, or pretrain.resume=false")
        try:
            objective.load_state_dict(state["objective"])
        except RuntimeError as exc:  # missing or unexpected weights: another model or library version
            reason = str(exc).splitlines()[0]
            raise CheckpointError(f"'{last}' holds objective weights this run cannot load ({reason}); it was "
                                  "written by another version of graphssl: set pretrain.resume=false or use "
                                  "another output_dir") from None
        optimizer.load_state_dict(state["optimizer"])
        if run.resume == "force":  # the saved optimiser carries the old recipe; this run's applies
            for group in optimizer.param_groups:
                group["lr"], group["weight_decay"] = run.lr, run.weight_decay
        epoch, epoch_step, step = state["epoch"], state.get("epoch_step", 0), state["step"]
        history = list(state["history"])
        skipped, epoch_skipped = state.get("skipped_steps", 0), state.get("epoch_skipped_steps", 0)
        saved_at = step
        streams.load({p: s for p, s in enumerate(state["streams"]) if p in mine and p < parts})
        if world.is_main:
            totals = state["epoch_totals"].to(torch.float64)
            print(f"resuming pretraining from {last} at epoch {epoch + 1}, step {epoch_step} of the epoch")
    model = objective
    if world.distributed:
        # an objective that may leave parameters out of a step's graph says so; searching for them
        # costs an extra pass over the autograd graph every step
        model = DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None,
                                        find_unused_parameters=bool(objective.unused_parameters()))

    def kept() -> str:
        if saved_at is None:
            return "No checkpoint and no encoder.pt were written"
        return f"{last} keeps the last good state (after step {saved_at}); no encoder.pt was written"

    def save_state(epoch_now: int, epoch_step_now: int) -> None:
        nonlocal totals, saved_at
        # a step with finite losses and gradients can still overflow the weights: never save those
        bad = nonfinite_tensors(objective)
        if world.any(bool(bad)):
            raise TrainingDiverged(
                f"pretraining diverged by step {step} (epoch {epoch + 1}): the weights hold NaN or infinite values "
                f"({', '.join(bad[:3]) or 'on another process'}) although every loss was finite; the learning rate "
                f"is likely too high (pretrain.lr={run.lr:g}): lower it. {kept()}")
        gathered = world.gather(streams.state(mine))
        totals = world.sum(totals)
        if world.is_main:
            merged = {p: s for part_states in gathered for p, s in part_states.items()}
            save_checkpoint(last, {
                "kind": "pretrain-state",
                "objective": objective.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch_now,
                "epoch_step": epoch_step_now,
                "step": step,
                "history": history,
                "epoch_totals": totals,
                "parts": parts,
                "streams": [merged[p] for p in range(parts)],
                "skipped_steps": skipped,
                "epoch_skipped_steps": epoch_skipped,
                "config": config.to_dict(),
            })
        else:
            totals = torch.zeros_like(totals)  # rank 0 now holds the sums
        saved_at = step
        world.barrier()

    done = run.max_steps is not None and step >= run.max_steps
    with _StopRequest() as stop:
        while epoch < run.epochs and not done:
            objective.train()
            objective.set_epoch(epoch, run.epochs)
            sampler = StepSampler(blocks, run.batch_size, config.seed, epoch, world.rank, world.world_size,
                                  run.accumulate, start_step=epoch_step)
            batches = iter(DataLoader(dataset, batch_sampler=sampler, num_workers=run.num_workers))
            bar = tqdm(total=sampler.steps, initial=epoch_step, disable=not show, unit="step", leave=False,
                       desc=f"pretrain {config.objective.name} epoch {epoch + 1}/{run.epochs}")
            while epoch_step < sampler.steps:
                t0 = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                step_loss, step_graphs, bad_loss = 0.0, 0, None
                # a skipped step must leave no trace: its forward passes move batch-norm statistics too
                kept_buffers = _copy_buffers(objective) if run.skip_nonfinite else None
                for a, part in enumerate(mine):
                    batch = next(batches).to(device)
                    sync = not world.distributed or a == len(mine) - 1
                    with (nullcontext() if sync else model.no_sync()), streams.use(part):
                        loss = model(batch)
                        (loss / run.accumulate).backward()
                    value = float(loss.detach())
                    if not math.isfinite(value) and bad_loss is None:
                        bad_loss = value
                    step_loss += value * batch.num_graphs
                    step_graphs += batch.num_graphs
                grads_ok = gradients_finite(objective)
                # one collective: every rank skips, stops or steps together
                stopping, nonfinite = world.any_of([stop.requested, bad_loss is not None or not grads_ok])
                if nonfinite:
                    optimizer.zero_grad(set_to_none=True)  # no update from this step; Adam's moments untouched
                    _restore_buffers(objective, kept_buffers)
                    skipped, epoch_skipped = skipped + 1, epoch_skipped + 1
                    broken = world.any(bool(nonfinite_tensors(objective)))
                    if skipped > run.skip_nonfinite or broken:
                        bar.close()
                        cause = (f"the loss was {bad_loss}" if bad_loss is not None else
                                 "the gradients held NaN or infinite values" if not grads_ok else
                                 "another process had a NaN or infinite loss or gradient")
                        raise TrainingDiverged(
                            f"pretraining diverged at step {step + 1} (epoch {epoch + 1}, step {epoch_step + 1} of "
                            f"{sampler.steps}): {cause}; the learning rate is likely too high (pretrain.lr="
                            f"{run.lr:g}): lower it{_skip_advice('pretrain', run.skip_nonfinite, skipped, broken)}. "
                            f"{kept()}")
                else:
                    optimizer.step()
                    objective.after_step()  # e.g. move an EMA target encoder (BGRL, JEPA)
                    totals[0] += step_loss
                    totals[1] += step_graphs
                step, epoch_step = step + 1, epoch_step + 1
                totals[2] += time.perf_counter() - t0
                bar.update(1)
                if step % 20 == 0:
                    bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
                done = run.max_steps is not None and step >= run.max_steps
                if stopping or (run.checkpoint_every and step % run.checkpoint_every == 0
                                and epoch_step < sampler.steps and not done):
                    save_state(epoch, epoch_step)
                if stopping:
                    bar.close()
                    raise RunInterrupted(f"pretraining stopped by SIGTERM at epoch {epoch + 1}, step {epoch_step}; "
                                         f"state saved to {last}: run the same command again to resume")
                if done:
                    break
            bar.close()
            totals = world.sum(totals)
            loss_sum, graphs, seconds = totals.tolist()
            history.append({"epoch": epoch + 1, "loss": loss_sum / max(graphs, 1),
                            "graphs_per_s": graphs / max(seconds, 1e-9), "seconds": seconds, "steps": step,
                            "skipped_steps": epoch_skipped, **objective.metrics()})
            if show:
                note = f", {epoch_skipped} non-finite steps skipped" if epoch_skipped else ""
                print(f"epoch {epoch + 1}: loss {history[-1]['loss']:.4f}, {history[-1]['graphs_per_s']:.0f} "
                      f"graphs/s{note}")
            totals = torch.zeros_like(totals)
            finished = epoch_step >= sampler.steps
            epoch, epoch_step = (epoch + 1, 0) if finished else (epoch, epoch_step)
            epoch_skipped = 0
            save_state(epoch, epoch_step)

    world.broadcast_buffers(objective)
    replicas = world.gather(_fingerprint(objective))
    if any(not torch.equal(r, replicas[0]) for r in replicas[1:]):
        raise RuntimeError(f"model replicas diverged across the {world.world_size} processes: {replicas}")
    path = out / "encoder.pt"
    exported, cleaned, bad = encoder, 0, []
    if world.is_main:
        if run.clean_batch_norm and batch_norms(encoder):
            exported = copy.deepcopy(encoder)
            cleaned = min(int(run.clean_batch_norm), len(clean))
            # a corpus is ordered set by set: its first graphs would all come from one set
            sample = clean.spread(cleaned) if isinstance(clean, Corpus) else range(cleaned)
            reestimate_batch_norm(exported, Subset(clean, sample), device)
        bad = nonfinite_tensors(exported)
    if world.any(bool(bad)):  # e.g. batch-norm statistics that overflowed on clean graphs: never ship them
        raise TrainingDiverged(
            f"pretraining ended with NaN or infinite values in the encoder ({', '.join(bad[:3]) or 'on rank 0'}); "
            f"the learning rate is likely too high (pretrain.lr={run.lr:g}): lower it. {kept()}")
    if world.is_main:
        payload: dict[str, Any] = {
            "kind": "pretrained-encoder",
            "encoder_format": ENCODER_FORMAT,
            "encoder": exported.state_dict(),  # with what the objective installed in it (SCD's conditioning)
            "batch_norm_graphs": cleaned,  # clean graphs its batch-norm statistics come from (0: training inputs)
            "objective_state": objective.export_state(),
            "model": dataclasses.asdict(config.model),
            "objective_name": config.objective.name,
            "config": config.to_dict(),
            "history": history,
            "processes": world.world_size,
        }
        if deg is not None:
            payload["deg"] = deg
        if isinstance(clean, Corpus):
            payload["corpus"] = clean.summary()  # graphs per data set, for the zoo card
        save_checkpoint(path, payload)
        (out / "pretrain_history.json").write_text(json.dumps(history, indent=1))
        write_pretrain_curves(history, out)
    world.barrier()
    return path
