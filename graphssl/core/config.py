"""Run configuration: typed sections, safe YAML loading and ``--set key=value`` overrides.

Every section is a dataclass, so a misspelt option fails with the list of valid names
instead of being silently ignored.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Union, get_args, get_origin, get_type_hints

import yaml

from graphssl.core.errors import ConfigError

ON_ERROR = ("raise", "skip")
DUPLICATES = ("auto", "reject", "keep")
TASK_TYPES = ("classification", "regression")  # what data.task_type may declare for a user's labels
JUMPING_KNOWLEDGE = ("last", "cat", "max", "lstm")  # PyG's BasicGNN modes; empty means last
# A config file or --set value whose anchors and aliases expand to more values than this is
# refused: real configs hold a few hundred, and an alias bomb grows tenfold per level.
MAX_CONFIG_VALUES = 100_000


def opt(default: Any = dataclasses.MISSING, text: str = "", *, factory: Callable[[], Any] | None = None) -> Any:
    """A config field and its one line of help, shown by ``graphssl <command> --help``."""
    metadata = {"help": text}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def check_choice(value: Any, allowed: tuple[str, ...], option: str) -> None:
    """Raise :class:`ConfigError` naming ``option`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        close = difflib.get_close_matches(str(value), allowed, n=1) if isinstance(value, str) else []
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"option '{option}' must be one of {', '.join(allowed)}, got {value!r}.{hint}")


def check_int(value: Any, option: str, minimum: int = 1, *, empty: str = "") -> None:
    """Raise :class:`ConfigError` unless ``value`` is an integer >= ``minimum``.

    ``empty`` (what an empty value means, e.g. "no limit") allows None.
    """
    if value is None and empty:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        need = {1: "a positive integer", 0: "a non-negative integer"}.get(minimum, f"an integer >= {minimum}")
        alternative = f", or empty for {empty}" if empty else ""
        raise ConfigError(f"option '{option}' must be {need}{alternative}; got {value!r}")


def check_number(value: Any, option: str, low: float, high: float = math.inf, *, low_open: bool = False,
                 high_open: bool = False, empty: str = "") -> None:
    """Raise :class:`ConfigError` unless ``value`` is a finite number in the interval ``low``..``high``
    (``low_open``/``high_open``: that end excluded). ``empty`` allows None, as in :func:`check_int`."""
    if value is None and empty:
        return
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        if high == math.inf:
            need = "a positive number" if (low == 0 and low_open) else f"a number >= {low:g}" if not low_open \
                else f"a number > {low:g}"
        else:
            need = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        alternative = f", or empty for {empty}" if empty else ""
        raise ConfigError(f"option '{option}' must be {need}{alternative}; got {value!r}")


# options that decide what a graph holds: one value for all data sets of a corpus (data.sources)
CORPUS_SHARED = ("cutoff", "explicit_h", "conformer", "descriptors", "sources")


@dataclass
class DataConfig:
    """Where structures come from: a registry name or a user's file."""

    # options that change how a data set is built, not what it holds
    BUILD_ONLY: ClassVar[tuple[str, ...]] = ("workers",)

    name: str | None = opt(None,
        'registry data set (`graphssl data list`): moses, moses-full, b3db, freesolv, rdkit-solubility, '
        'qm9, qm9-3d, matbench-dielectric, brep-machining, moleculenet-*')
    path: str | None = opt(None,
        'or your own data: a molecule file (.csv/.tsv with SMILES + label columns, .smi, .sdf), a folder '
        'of CIF/POSCAR files (labels via data.label_file), an .extxyz/.xyz/ASE .db file, a folder of '
        'STEP files, or a folder written by `graphssl data prepare`')
    smiles_column: str | None = opt(None, 'SMILES column of a CSV/TSV (guessed when empty)')
    label_columns: list[str] = opt(factory=list,
        text="label columns (CSV/TSV), SDF property names, or a subset of a registry data set's tasks (e.g. "
        '[gap] for qm9)')
    task_type: str | None = opt(None, 'classification or regression (user files with labels)')
    offset: int = opt(0,
        'skip the first N records (atomistic sources), e.g. to pretrain on structures the task does not '
        'use')
    limit: int | None = opt(None, 'use only the first N records (deterministic subsets)')
    on_error: str = opt("raise", 'raise: stop at the first bad record; skip: skip bad records and report each')
    workers: int = opt(1,
        'processes that build the data set on its first use (featurising records; generating B-rep parts); '
        'the graphs, the report and the cache folder do not depend on it')
    # A record equal to an earlier kept one (same canonical SMILES, same atoms and cell, same STEP
    # bytes) is a bad record under "reject": in labelled data a duplicate can land in both the
    # training and the test split, or carry a conflicting label. "auto" rejects them in labelled
    # data sets and keeps them in unlabeled corpora, where repeats only re-weight pretraining.
    duplicates: str = opt("auto",
        'reject: a record equal to an earlier kept one (same canonical SMILES; same atoms, positions and '
        'cell; byte-identical STEP file) is a bad record, named as a duplicate of that one; keep: keep '
        'duplicates; auto: reject them in labelled data sets, keep them in unlabeled ones')
    # Far above every registered data set (largest: 288 atoms); catches runaway inputs such as
    # polymers written out atom by atom before they cost conformer or neighbour-list time.
    max_atoms: int | None = opt(5000,
        'a molecule or structure with more atoms (graph nodes; hydrogens count with explicit_h) is a bad '
        'record; empty: no limit')
    explicit_h: bool = opt(False, 'add hydrogens as nodes')
    conformer: bool = opt(False, 'add 3D positions (ETKDG, then MMFF where it applies)')
    descriptors: str | None = opt(None,
        'attach a per-graph descriptor vector (targets of objective descriptors): fast or all (RDKit 2D '
        'descriptors of molecules), brep (solid properties of CAD parts); empty: none')
    # Embedding time grows with the cube of the atom count (a 900-atom chain takes minutes, a
    # 9,000-atom one hours) and RDKit's own timeout does not cover the set-up.
    conformer_max_atoms: int | None = opt(500,
        'with conformer: a molecule with more atoms (hydrogens included) gets no 3D conformer and is a bad '
        'record; empty: no limit')
    conformer_timeout: int | None = opt(60,
        'with conformer: seconds of ETKDG embedding per molecule before it is a bad record; empty: no limit')
    # atomistic structures (crystals, 3D molecules)
    cutoff: float = opt(5.0, 'atomistic structures: neighbour-list cutoff radius in Angstrom')
    max_neighbors: int | None = opt(None, "atomistic structures: keep only each atom's nearest N neighbours")
    label_file: str | None = opt(None, 'folder of CIF/POSCAR files: CSV of labels keyed by file name')
    id_column: str | None = opt(None, 'column of label_file that holds the file names')
    # one corpus from several data sets, e.g. QM9 molecules and Matbench crystals for one atomistic encoder
    sources: list[Any] = opt(factory=list,
        text='a pretraining corpus of several data sets of one domain, read one after the other with their labels '
        'dropped: each item a registry name or a mapping of data options (name or path, offset, limit, '
        'max_neighbors, on_error, repeat, ...); an option an item leaves out is this section\'s')
    repeat: int = opt(1,
        'in an item of data.sources: how many times its graphs appear per epoch (weights a small data set up '
        'against a large one)')

    def check(self, where: str = "data.") -> None:
        """Raise :class:`ConfigError` for a value outside its option's choices or range.

        Builders call it too: a config can be changed after it was loaded.
        """
        check_choice(self.on_error, ON_ERROR, f"{where}on_error")
        check_choice(self.duplicates, DUPLICATES, f"{where}duplicates")
        check_int(self.workers, f"{where}workers")
        limit = self.max_atoms
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ConfigError(f"option '{where}max_atoms' must be a positive integer, or empty for no limit; "
                              f"got {limit!r}")
        if self.task_type is not None:  # checked here so the message names the section it was set in
            check_choice(self.task_type, TASK_TYPES, f"{where}task_type")
        check_int(self.repeat, f"{where}repeat")
        if self.repeat != 1:
            raise ConfigError(f"option '{where}repeat' weights one data set of a corpus: set it in an item of "
                              f"{where}sources (a single data set is repeated by more epochs)")
        if self.sources:
            if self.name or self.path:
                raise ConfigError(f"give either {where}sources or a single data set ({where}name / {where}path), "
                                  "not both")
            self.parts(where)

    def parts(self, where: str = "data.") -> list[tuple[DataConfig, int]]:
        """The data sets this section reads, each with how many times an epoch repeats it: itself
        once, or one config per item of ``sources`` (options it leaves out are this section's)."""
        if not isinstance(self.sources, list) or not self.sources:
            return [(self, 1)]
        base = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("sources", "repeat")}
        out = []
        for i, item in enumerate(self.sources):
            at = f"{where}sources[{i}]"
            spec = {"name": item} if isinstance(item, str) else item
            if not isinstance(spec, dict):
                raise ConfigError(f"option '{at}' must be a data set name or a mapping of data options, got {item!r}")
            shared = [k for k in CORPUS_SHARED if k in spec]
            if shared:
                raise ConfigError(f"option '{at}.{shared[0]}': every data set of a corpus is made into graphs the "
                                  f"same way; set {shared[0]} once, in the section that holds sources")
            spec = dict(spec)
            repeat = spec.pop("repeat", 1)
            check_int(repeat, f"{at}.repeat")
            if not spec.get("name") and not spec.get("path"):
                raise ConfigError(f"option '{at}' names no data set: give it a name (`graphssl data list`) or a path")
            out.append((from_dict(DataConfig, {**base, **spec}, prefix=f"{at}."), repeat))
        return out

    def rejects_duplicates(self, labelled: bool) -> bool:
        """Whether a duplicate record is a bad record in a data set that is (or is not) labelled."""
        return self.duplicates == "reject" or (self.duplicates == "auto" and labelled)


@dataclass
class ModelConfig:
    """The encoder: a PyG backbone with categorical embeddings in front."""

    backbone: str = opt("gine", '2D: gin, gine (bond-aware), gcn, gat, sage, pna; 3D: schnet, painn, et')
    hidden: int = opt(300, 'width of embeddings and hidden layers')
    num_layers: int = opt(5, 'message-passing layers')
    dropout: float = opt(0.0, 'dropout in the backbone during pretraining')
    norm: str | None = opt("batch_norm",
        'normalisation between layers (batch_norm, layer_norm, graph_norm, or empty)')
    jk: str | None = opt(None, 'jumping knowledge: empty (last layer), cat, max, lstm')
    pooling: str = opt("mean", 'graph readout for fine-tuning: mean, sum, max')
    options: dict[str, Any] = opt(factory=dict, text='extra keyword arguments for the backbone (e.g. heads for gat)')

    def check(self, where: str = "model.") -> None:
        """Raise :class:`ConfigError` for a size, rate or mode out of range. Names that live in
        registries (backbone, norm, pooling, options) are checked by the engine, which sees them."""
        if not isinstance(self.backbone, str) or not self.backbone.strip():
            raise ConfigError(f"option '{where}backbone' must name a backbone, got {self.backbone!r}")
        check_int(self.hidden, f"{where}hidden")
        check_int(self.num_layers, f"{where}num_layers")
        check_number(self.dropout, f"{where}dropout", 0.0, 1.0, high_open=True)
        if self.jk is not None:
            check_choice(self.jk, JUMPING_KNOWLEDGE, f"{where}jk")


@dataclass
class ObjectiveConfig:
    """A pretraining objective by name; every other key goes to its constructor."""

    name: str = opt("graphmae",
        'graphmae, attrmask, higmae, graphcl (2D); brepmae (CAD parts); denoise, scd (3D); jepa (both); other '
        'keys under objective: are its options')
    options: dict[str, Any] = opt(factory=dict,
        text='objective options, e.g. mask_rate, replace_rate, keep_rate, alpha (graphmae); mask_rate, mask_edges, '
             'point_weight, normal_weight, type_weight, area_weight, degree_weight (brepmae: the loss is the weighted '
             'sum of UV-grid point and normal MSE over untrimmed samples, surface-type cross-entropy, and squared '
             'errors of log(area + 1e-6) and log(1 + degree), over masked faces)')

    # Unknown keys are collected here and checked against the objective's signature.
    _extra_to = "options"

    def check(self, where: str = "objective.") -> None:
        """Raise :class:`ConfigError` for an empty name; the engine checks it against the registry."""
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"option '{where}name' must name an objective, got {self.name!r}")


@dataclass
class PretrainConfig:
    epochs: int = opt(10, 'pretraining epochs')
    batch_size: int = opt(256, 'graphs per pretraining batch')
    lr: float = opt(1e-3, 'Adam learning rate')
    weight_decay: float = opt(0.0, 'Adam weight decay')
    max_steps: int | None = opt(None, 'stop after this many optimiser steps (empty: run all epochs)')
    resume: bool | str = opt(True,
        'continue from output_dir/last.pt when it exists (true); false: start over; force: continue even '
        'though pretrain.batch_size, lr, weight_decay, accumulate or seed changed (the run then continues at '
        'the same step number under the new settings; data, model and objective must still match)')
    num_workers: int = opt(0, 'DataLoader worker processes')
    accumulate: int = opt(1,
        'micro-batches per optimiser step in each process: the global batch (batch_size) is split into '
        "processes x accumulate equal micro-batches and the step's loss is their mean")
    clean_batch_norm: int | None = opt(10_000, "before encoder.pt is written, re-estimate the encoder's batch-norm "
                                       'running statistics on up to this many clean (unmasked) graphs of data: '
                                       'the statistics of masked training inputs misdescribe real graphs '
                                       '(empty or 0: keep them)')
    checkpoint_every: int | None = opt(1000,
        'also write last.pt every this many optimiser steps, so a killed run loses at most that many '
        '(null: only at epoch ends); SIGTERM always writes one before stopping')
    skip_nonfinite: int = opt(0,
        'a step whose loss or gradients are NaN or infinite stops the run (the learning rate is usually too '
        'high) and keeps the last good last.pt; N > 0: skip up to N such steps instead (no weight update; '
        'counted as skipped_steps in the history)')

    def check(self, where: str = "pretrain.") -> None:
        """Raise :class:`ConfigError` for a value out of range, before any data is built."""
        check_int(self.epochs, f"{where}epochs")
        check_int(self.batch_size, f"{where}batch_size")
        check_number(self.lr, f"{where}lr", 0.0, low_open=True)
        check_number(self.weight_decay, f"{where}weight_decay", 0.0)
        check_int(self.max_steps, f"{where}max_steps", empty="no limit")
        if not (isinstance(self.resume, bool) or self.resume == "force"):
            raise ConfigError(f"option '{where}resume' must be true, false or force; got {self.resume!r}")
        check_int(self.num_workers, f"{where}num_workers", 0)
        check_int(self.accumulate, f"{where}accumulate")
        check_int(self.clean_batch_norm, f"{where}clean_batch_norm", 0, empty="keeping the statistics")
        check_int(self.checkpoint_every, f"{where}checkpoint_every", 0, empty="epoch ends only")
        check_int(self.skip_nonfinite, f"{where}skip_nonfinite", 0)


@dataclass
class FinetuneConfig:
    """Fine-tuning on a labelled task; the test score is read at the best validation epoch."""

    task: DataConfig = opt(factory=DataConfig, text='labelled data set: a registry name or a mapping like data:')
    pretrained: str | None = opt(None,
        'encoder to start from: an encoder.pt path or zoo:NAME (`graphssl zoo list`); --checkpoint overrides it; '
        'empty: train from scratch')
    split: str = opt("scaffold",
        'scaffold (deterministic Bemis-Murcko, pretrain-gnns), balanced_scaffold (chemprop\'s, seeded by '
        'finetune.split_seed), random, or matbench (fold '
        "finetune.split_seed of Matbench's 5-fold KFold, validation drawn from its training part), or "
        'column (the task file\'s own split column, finetune.split_column)')
    split_fractions: list[float] = opt(factory=lambda: [0.8, 0.1, 0.1], text='train, valid, test shares')
    split_seed: int = opt(0, 'seed of the random and balanced_scaffold splits; the fold (0-4) of the matbench split')
    split_column: str = opt("split", 'split column: the column of the task file (CSV/TSV column, SDF '
                                     'property) that assigns each record to train, valid or test')
    split_values: list[str] = opt(factory=lambda: ["train", "valid", "test"],
        text='split column: the values that mean train, valid and test (compared ignoring case)')
    label_fraction: float = opt(1.0, 'share of the training split whose labels are used (few-label curves)')
    mode: str = opt("full", 'full (train everything), linear (frozen encoder, train the head) or lp-ft '
                             '(linear probe for finetune.probe_epochs epochs, then train everything)')
    probe_epochs: int = opt(0, 'lp-ft: epochs of training the head alone on the frozen encoder before '
                               'everything trains (1 <= probe_epochs < epochs; 0 with the other modes); '
                               'these epochs count in finetune.epochs and in model selection')
    epochs: int = opt(100, 'fine-tuning epochs; the test score is read at the best validation epoch')
    batch_size: int = opt(32, 'graphs per fine-tuning batch')
    lr: float = opt(1e-3, 'Adam learning rate (of the head, and of the encoder unless encoder_lr is set)')
    encoder_lr: float | None = opt(None, 'Adam learning rate of the encoder (empty: lr); a pretrained encoder '
                                         'often keeps more of what it learnt with a smaller one')
    weight_decay: float = opt(0.0, "Adam's weight decay: an L2 penalty added to the gradient before Adam's "
                                   'scaling (coupled, torch.optim.Adam), not decoupled AdamW decay')
    layer_decay: float | None = opt(None, 'layer-wise learning-rate decay in (0, 1]: the last message-passing '
        'layer trains at encoder_lr (or lr), each earlier one at a further factor layer_decay, the input '
        'embeddings (layer 0) at the smallest; the head at lr. Empty: one encoder learning rate')
    freeze_layers: int = opt(0, 'freeze the first k encoder layers, the input embeddings counting as layer 0 '
        '(1: the embeddings, 2: the embeddings and the first message-passing layer); frozen weights do not '
        'change and the batch norms of frozen layers run in eval mode (their running statistics stay)')
    unfreeze_every: int | None = opt(None, 'staged unfreezing: every N epochs the highest still-frozen layer '
        'of finetune.freeze_layers starts to train (empty: they stay frozen)')
    patience: int | None = opt(None, 'early stopping: stop once the validation score has not improved for N '
        'epochs (empty: run every epoch); the test score is still the one at the best validation epoch')
    dropout: float = opt(0.5, 'dropout in the backbone and head while fine-tuning')
    reestimate_batch_norm: bool = opt(True, "recompute the encoder's batch-norm running statistics on the "
                                             'training split before fine-tuning (pretraining inputs, e.g. '
                                             'masked graphs, can leave statistics that do not fit the task)')
    pooling: str | None = opt(None, "graph readout while fine-tuning: mean, sum or max (empty: the encoder's "
                                    'model.pooling, from the checkpoint when there is one)')
    head_hidden: int | None = opt(None, 'hidden width of an MLP head (empty: linear head)')
    seed: int = opt(0, 'seed of the fine-tuning run (head init, shuffling, label subset)')
    save_checkpoints: bool = opt(True, 'write last.pt every epoch and best.pt at the end')
    resume: bool = opt(True, 'continue from output_dir/last.pt when it exists')
    # atomistic tasks
    energy_weight: float = opt(1.0, 'energies and forces: weight of the per-atom energy loss')
    force_weight: float = opt(10.0, 'energies and forces: weight of the force loss')
    stress_weight: float = opt(0.0, 'energies and forces: weight of the stress loss (every structure then '
                               'needs a stress label and a cell); 0: stress is not trained')
    noisy_nodes_weight: float = opt(0.0,
        'weight of the auxiliary noisy-nodes denoising loss (geometric backbones; SCD uses 0.1)')
    noisy_nodes_sigma: float = opt(0.005, 'noise of the noisy-nodes loss, Angstrom')
    skip_nonfinite: int = opt(0,
        'a batch whose loss or gradients are NaN or infinite stops the run (the learning rate is usually too '
        'high) and keeps the last good last.pt; N > 0: skip up to N such batches instead (no weight update; '
        'counted as skipped_steps in the history)')

    def check(self, where: str = "finetune.") -> None:
        """Raise :class:`ConfigError` for a value out of range, before any data is built. The
        split, mode and pooling names live in registries and are checked by the engine."""
        self.task.check(f"{where}task.")
        fractions = self.split_fractions
        if not isinstance(fractions, list) or len(fractions) != 3:
            raise ConfigError(f"option '{where}split_fractions' must be three numbers (train, valid, test); "
                              f"got {fractions!r}")
        for i, share in enumerate(fractions):
            check_number(share, f"{where}split_fractions[{i}]", 0.0, 1.0, low_open=True)
        if abs(sum(fractions) - 1.0) > 1e-6:
            raise ConfigError(f"option '{where}split_fractions' must sum to 1; got {fractions!r} "
                              f"(sum {sum(fractions):g})")
        check_int(self.split_seed, f"{where}split_seed", 0)
        check_number(self.label_fraction, f"{where}label_fraction", 0.0, 1.0, low_open=True)
        check_int(self.epochs, f"{where}epochs")
        check_int(self.batch_size, f"{where}batch_size")
        check_number(self.lr, f"{where}lr", 0.0, low_open=True)
        check_number(self.encoder_lr, f"{where}encoder_lr", 0.0, low_open=True, empty="finetune.lr")
        check_number(self.weight_decay, f"{where}weight_decay", 0.0)
        check_int(self.probe_epochs, f"{where}probe_epochs", 0)
        if self.mode == "lp-ft" and not 1 <= self.probe_epochs < self.epochs:
            raise ConfigError(f"option '{where}probe_epochs' must be at least 1 and below {where}epochs "
                              f"({self.epochs}) with {where}mode=lp-ft; got {self.probe_epochs!r}")
        if self.mode != "lp-ft" and self.probe_epochs:
            raise ConfigError(f"option '{where}probe_epochs' applies only to {where}mode=lp-ft (the mode is "
                              f"{self.mode!r}); got {self.probe_epochs!r}: set it to 0 or the mode to lp-ft")
        check_number(self.layer_decay, f"{where}layer_decay", 0.0, 1.0, low_open=True, empty="one encoder lr")
        check_int(self.freeze_layers, f"{where}freeze_layers", 0)
        check_int(self.unfreeze_every, f"{where}unfreeze_every", empty="no unfreezing")
        if self.unfreeze_every is not None and not self.freeze_layers:
            raise ConfigError(f"option '{where}unfreeze_every' ({self.unfreeze_every!r}) unfreezes layers of "
                              f"{where}freeze_layers, which is 0: set freeze_layers or leave unfreeze_every empty")
        if self.mode == "linear":
            for name in ("layer_decay", "freeze_layers"):
                if getattr(self, name):
                    raise ConfigError(f"option '{where}{name}' ({getattr(self, name)!r}) acts on the encoder, which "
                                      f"{where}mode=linear freezes whole; use mode full or lp-ft, or leave it empty")
        check_int(self.patience, f"{where}patience", empty="no early stopping")
        check_number(self.dropout, f"{where}dropout", 0.0, 1.0, high_open=True)
        check_int(self.head_hidden, f"{where}head_hidden", empty="a linear head")
        for name in ("energy_weight", "force_weight", "stress_weight", "noisy_nodes_weight", "noisy_nodes_sigma"):
            check_number(getattr(self, name), f"{where}{name}", 0.0)
        check_int(self.seed, f"{where}seed", 0)
        check_int(self.skip_nonfinite, f"{where}skip_nonfinite", 0)


@dataclass
class BenchmarkConfig:
    methods: list[Any] = opt(factory=lambda: ["scratch", "attrmask", "graphmae"],
        text='scratch, objectives by name (pretrained here), zoo:NAME (a shipped encoder), encoder:PATH (the '
             'encoder.pt of an earlier run), ecfp-rf / rdkit-rf, or mappings {name:, label:, <options>}')
    tasks: list[Any] = opt(factory=list,
        text='labelled data sets (names or mappings like data:), a mapping may add the harness options label, '
        'splits, label_counts, tie_tolerance and eval_count (graphssl.bench.harness)')
    seeds: list[int] = opt(factory=lambda: [0, 1, 2], text='fine-tuning seeds; every method sees the same seeds')
    label_fractions: list[float] = opt(factory=lambda: [1.0], text='label fractions of the training split to run')
    tier: str = opt("custom", 'a name for the report (quick, paper, ...)')
    # A standard tier runs for hours: a stopped run, or one given more methods or seeds later,
    # should cost only the runs it lacks.
    resume: bool = opt(False,
        'keep the runs of an earlier results.json in output_dir that this config would repeat (same model, '
        'fine-tuning and data settings; same method, task, split, label setting and seed; a zoo entry with '
        'the same sha256) and run only the missing ones; methods pretrained here are always rerun')

    def check(self, where: str = "benchmark.") -> None:
        """Raise :class:`ConfigError` for an empty list or a bad entry; method names are checked by
        the benchmark harness, data set names by the engine."""
        if not self.methods:
            raise ConfigError(f"option '{where}methods' is empty: list scratch and/or objectives")
        if not self.seeds:
            raise ConfigError(f"option '{where}seeds' is empty: list at least one fine-tuning seed")
        for i, seed in enumerate(self.seeds):
            check_int(seed, f"{where}seeds[{i}]", 0)
        for i, fraction in enumerate(self.label_fractions):
            check_number(fraction, f"{where}label_fractions[{i}]", 0.0, 1.0, low_open=True)
        for i, task in enumerate(self.tasks):
            benchmark_task_data(task, f"{where}tasks[{i}]").check(f"{where}tasks[{i}].")


# Per-task options of benchmark.tasks that belong to the harness, not to the data section; the
# harness (graphssl.bench.harness.parse_tasks) checks their values.
BENCHMARK_TASK_OPTIONS = ("label", "splits", "label_counts", "tie_tolerance", "eval_count")


def benchmark_task_data(spec: Any, where: str = "benchmark.tasks") -> DataConfig:
    """The data section of a ``benchmark.tasks`` entry: the entry without its harness options."""
    if isinstance(spec, dict):
        spec = {k: v for k, v in spec.items() if k not in BENCHMARK_TASK_OPTIONS}
    return data_config(spec, where)


@dataclass
class RunConfig:
    seed: int = opt(0, 'seed of the pretraining run (weights, masks, shuffling)')
    device: str = opt("auto", 'auto (CUDA when present, else CPU), cpu, cuda or cuda:N')
    output_dir: str = opt("runs/default", 'folder for checkpoints, configs and results')
    cache_dir: str = opt(".graphssl_cache",
        'folder for featurised data sets, keyed by featuriser version and options')
    threads: int | None = opt(None, "torch CPU threads (empty: torch's default)")
    progress: bool = opt(True, 'show progress bars')
    data: DataConfig = opt(factory=DataConfig)
    model: ModelConfig = opt(factory=ModelConfig)
    objective: ObjectiveConfig = opt(factory=ObjectiveConfig)
    pretrain: PretrainConfig = opt(factory=PretrainConfig)
    finetune: FinetuneConfig = opt(factory=FinetuneConfig)
    benchmark: BenchmarkConfig = opt(factory=BenchmarkConfig)

    def __post_init__(self) -> None:
        # `~` in a folder is the user's home, as in a shell (YAML and --set values are not expanded)
        if isinstance(self.output_dir, str) and self.output_dir.startswith("~"):
            self.output_dir = os.path.expanduser(self.output_dir)
        if isinstance(self.cache_dir, str) and self.cache_dir.startswith("~"):
            self.cache_dir = os.path.expanduser(self.cache_dir)

    def check(self) -> None:
        """Raise :class:`ConfigError` for any value out of range, in every section. Registry names
        (backbones, objectives, splits, data sets) are checked by ``graphssl.engine.runtime.validate``."""
        for option in ("output_dir", "cache_dir"):
            value = getattr(self, option)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"option '{option}' is empty: give a folder (an empty one would mean the "
                                  "working folder)")
        check_int(self.seed, "seed", 0)
        check_int(self.threads, "threads", empty="torch's default")
        self.data.check("data.")
        self.model.check("model.")
        self.objective.check("objective.")
        self.pretrain.check("pretrain.")
        self.finetune.check("finetune.")
        self.benchmark.check("benchmark.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def same_settings(old: Any, new: Any, default: Any, ignore: tuple[str, ...] = DataConfig.BUILD_ONLY) -> bool:
    """Whether settings ``old`` (saved by an earlier run, as ``to_dict`` gives them) and ``new`` are
    the same, an option that ``old`` lacks counting as equal when ``new`` has its default (options
    added to graphssl since the earlier run, which could not have used them). Options named in
    ``ignore`` (by default those that change only how a data set is built) are skipped at any depth."""
    if isinstance(old, list) and isinstance(new, list):  # e.g. benchmark.tasks: item by item
        return len(old) == len(new) and all(same_settings(a, b, None, ignore) for a, b in zip(old, new))
    if not isinstance(old, dict) or not isinstance(new, dict):
        return old == new
    default = default if isinstance(default, dict) else {}
    old, new = ({k: v for k, v in d.items() if k not in ignore} for d in (old, new))
    if set(old) - set(new):
        return False
    return all(same_settings(old[k], new[k], default.get(k), ignore) if k in old
               else k in default and new[k] == default[k] for k in new)


def _field_types(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _unknown_key(key: str, allowed: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(
        f"unknown option '{where}{key}'.{hint} Valid options here: {', '.join(sorted(allowed))}."
    )


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check a YAML value against a field annotation; build nested dataclasses."""
    origin = get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if annotation is DataConfig and isinstance(value, str):
            return DataConfig(name=value)  # a registry name stands for {name: ...}
        if not isinstance(value, dict):
            raise ConfigError(f"option '{where}' must be a mapping, got {value!r}")
        return from_dict(annotation, value, prefix=f"{where}.")
    if origin is Union or origin is types.UnionType:  # Optional[X] and X | None alike
        args = get_args(annotation)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"option '{where}' may not be empty")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if annotation is Any:
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"option '{where}' must be a list, got {value!r}")
        (item,) = get_args(annotation) or (Any,)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"option '{where}' must be a mapping, got {value!r}")
        return dict(value)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"option '{where}' must be a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)  # 1e3 reads as a float
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"option '{where}' must be an integer, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"option '{where}' must be true or false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"option '{where}' must be a string, got {value!r}")
        return value
    return value


def from_dict(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys by name."""
    types = _field_types(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    extra_to = getattr(cls, "_extra_to", None)
    for key, value in values.items():
        if key not in types or key.startswith("_"):
            if extra_to is not None:
                kwargs.setdefault(extra_to, dict(values.get(extra_to) or {}))[key] = value
                continue
            raise _unknown_key(str(key), names, prefix)
        if key == extra_to and extra_to in kwargs:
            kwargs[key].update(value or {})
            continue
        kwargs[key] = _coerce(value, types[key], f"{prefix}{key}")
    result = cls(**kwargs)
    if prefix and callable(getattr(result, "check", None)):
        result.check(prefix)  # bad choices fail when the config is read, not at the first build
    return result


class _DuplicateKey(yaml.YAMLError):
    """A key given twice in one mapping (PyYAML would keep the last silently)."""


class ConfigLoader(yaml.SafeLoader):
    """The safe loader, stricter: a key repeated in one mapping is an error naming both lines,
    and numbers such as ``1e-4`` and ``1e6`` are numbers (YAML 1.1 wants a dot: ``1.0e-4``)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` keys may be overridden: that is what merging is for
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                line = key_node.start_mark.line + 1
                if first is not None:
                    raise _DuplicateKey(f"key '{key}' appears twice in the same mapping, at line {first} and "
                                        f"line {line}; keep one")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _expanded_size(value: Any, limit: int) -> int:
    """How many values ``value`` holds once every alias is written out, counting up to ``limit``.

    Aliases share one object, so the count is memoised per object: linear in the file, however
    far the aliases would expand. A container that holds itself raises ValueError.
    """
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(item: Any) -> int:
        if not isinstance(item, (dict, list)):
            return 1
        key = id(item)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise ValueError("an alias refers to the mapping or list that holds it")
        open_.add(key)
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                break
        open_.discard(key)
        sizes[key] = total
        return total

    return size(value)


def safe_load(text: str, where: str) -> Any:
    """Parse YAML ``text`` with :class:`ConfigLoader`; ``where`` (e.g. "config file 'x.yaml'") starts
    each error message. Anchors and aliases that expand past :data:`MAX_CONFIG_VALUES` are refused."""
    try:
        value = yaml.load(text, Loader=ConfigLoader)  # ConfigLoader is a yaml.SafeLoader subclass
    except _DuplicateKey as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {exc}") from None
    try:
        count = _expanded_size(value, MAX_CONFIG_VALUES)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if count > MAX_CONFIG_VALUES:
        raise ConfigError(f"{where}: its anchors and aliases expand to more than {MAX_CONFIG_VALUES} values; "
                          "write the values out instead of nesting aliases")
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into a key path and a YAML-parsed value."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value, e.g. pretrain.epochs=5")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{text}' has an empty key")
    value = safe_load(raw, f"override '{text}': value") if raw.strip() else None
    return key.split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``key=value`` override applied."""
    out = copy.deepcopy(raw)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif isinstance(child, str):
                child = node[part] = {"name": child}  # a data set given by name becomes a mapping
            if not isinstance(child, dict):
                raise ConfigError(f"override '{text}': '{part}' is not a section")
            node = child
        node[path[-1]] = value
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with the safe loader."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"config file '{path}' is a folder; give the YAML file")
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file '{path}' cannot be read ({exc})") from None
    raw = safe_load(text, f"config file '{path}'")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping at the top level")
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Load a run configuration from YAML (optional) plus ``key=value`` overrides."""
    raw = load_yaml(path) if path is not None else {}
    raw = apply_overrides(raw, overrides or [])
    config = from_dict(RunConfig, raw)
    config.check()
    return config


def save_config(config: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def data_config(spec: Any, where: str = "task") -> DataConfig:
    """Accept a registry name or a mapping of :class:`DataConfig` fields."""
    if isinstance(spec, DataConfig):
        return spec
    if isinstance(spec, str):
        return DataConfig(name=spec)
    if isinstance(spec, dict):
        return from_dict(DataConfig, spec, prefix=f"{where}.")
    raise ConfigError(f"'{where}' must be a data set name or a mapping, got {spec!r}")


def _help_rows(cls: type = RunConfig, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(option name, default, help) of every option, nested sections walked in field order."""
    rows = []
    hints = get_type_hints(cls)
    defaults = cls()
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        text = f.metadata.get("help", "")
        value = getattr(defaults, f.name)
        if dataclasses.is_dataclass(hints[f.name]) and not text:
            rows += _help_rows(hints[f.name], f"{name}.")
            continue
        rows.append((name, dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value, text))
    return rows


def options_text() -> str:
    """Every option with its default and help, for argparse epilogs."""
    lines = ["configuration options (YAML keys; override any with --set key=value):"]
    for name, value, text in _help_rows():
        shown = "" if isinstance(value, dict) and not value else f" (default: {value})"
        lines.append(f"  {name}{shown}\n      {text}")
    return "\n".join(lines)


def undocumented() -> list[str]:
    """Option names that have no help line (kept empty by a test)."""
    return [name for name, _, text in _help_rows() if not text]
