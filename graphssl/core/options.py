"""One line of help for every configuration option, shown by ``graphssl <command> --help``."""

from __future__ import annotations

import dataclasses
from typing import get_type_hints

from graphssl.core.config import RunConfig

HELP = {
    "seed": "seed of the pretraining run (weights, masks, shuffling)",
    "device": "auto (CUDA when present, else CPU), cpu, cuda or cuda:N",
    "output_dir": "folder for checkpoints, configs and results",
    "cache_dir": "folder for featurised data sets, keyed by featuriser version and options",
    "threads": "torch CPU threads (empty: torch's default)",
    "progress": "show progress bars",
    "data.name": "registry data set (`graphssl data list`): moses, moses-full, b3db, freesolv, rdkit-solubility, "
                 "qm9, qm9-3d, matbench-dielectric, brep-machining, moleculenet-*",
    "data.path": "or your own data: a molecule file (.csv/.tsv with SMILES + label columns, .smi, .sdf), a folder "
                 "of CIF/POSCAR files (labels via data.label_file), an .extxyz/.xyz/ASE .db file, a folder of STEP "
                 "files, or a folder written by `graphssl data prepare`",
    "data.smiles_column": "SMILES column of a CSV/TSV (guessed when empty)",
    "data.label_columns": "label columns (CSV/TSV), SDF property names, or a subset of a registry data set's tasks (e.g. [gap] for qm9)",
    "data.task_type": "classification or regression (user files with labels)",
    "data.limit": "use only the first N records (deterministic subsets)",
    "data.offset": "skip the first N records (atomistic sources), e.g. to pretrain on structures the task does not use",
    "data.on_error": "raise: stop at the first bad record; skip: skip bad records and report each",
    "data.duplicates": "reject: a record equal to an earlier kept one (same canonical SMILES; same atoms, positions "
                       "and cell; byte-identical STEP file) is a bad record, named as a duplicate of that one; "
                       "keep: keep duplicates; auto: reject them in labelled data sets, keep them in unlabeled ones",
    "data.max_atoms": "a molecule or structure with more atoms (graph nodes; hydrogens count with explicit_h) "
                      "is a bad record; empty: no limit",
    "data.explicit_h": "add hydrogens as nodes",
    "data.conformer": "add 3D positions (ETKDG, then MMFF where it applies)",
    "data.cutoff": "atomistic structures: neighbour-list cutoff radius in Angstrom",
    "data.max_neighbors": "atomistic structures: keep only each atom's nearest N neighbours",
    "data.label_file": "folder of CIF/POSCAR files: CSV of labels keyed by file name",
    "data.id_column": "column of label_file that holds the file names",
    "model.backbone": "2D: gin, gine (bond-aware), gcn, gat, sage, pna; 3D: schnet, painn, et",
    "model.hidden": "width of embeddings and hidden layers",
    "model.num_layers": "message-passing layers",
    "model.dropout": "dropout in the backbone during pretraining",
    "model.norm": "normalisation between layers (batch_norm, layer_norm, graph_norm, or empty)",
    "model.jk": "jumping knowledge: empty (last layer), cat, max, lstm",
    "model.pooling": "graph readout for fine-tuning: mean, sum, max",
    "model.options": "extra keyword arguments for the backbone (e.g. heads for gat)",
    "objective.name": "graphmae, attrmask, higmae (2D); denoise, scd (3D); other keys under objective: are its options",
    "objective.options": "objective options, e.g. mask_rate, replace_rate, keep_rate, alpha (graphmae)",
    "pretrain.epochs": "pretraining epochs",
    "pretrain.batch_size": "graphs per pretraining batch",
    "pretrain.lr": "Adam learning rate",
    "pretrain.weight_decay": "Adam weight decay",
    "pretrain.max_steps": "stop after this many optimiser steps (empty: run all epochs)",
    "pretrain.resume": "continue from output_dir/last.pt when it exists",
    "pretrain.num_workers": "DataLoader worker processes",
    "pretrain.accumulate": "micro-batches per optimiser step in each process: the global batch (batch_size) is split "
                           "into processes x accumulate equal micro-batches and the step's loss is their mean",
    "pretrain.checkpoint_every": "also write last.pt every this many optimiser steps, so a killed run loses at most "
                                 "that many (null: only at epoch ends); SIGTERM always writes one before stopping",
    "finetune.task": "labelled data set: a registry name or a mapping like data:",
    "finetune.split": "scaffold (deterministic Bemis-Murcko, pretrain-gnns), random, or matbench (fold "
                      "finetune.split_seed of Matbench's 5-fold KFold, validation drawn from its training part)",
    "finetune.split_fractions": "train, valid, test shares",
    "finetune.split_seed": "seed of the random split; the fold (0-4) of the matbench split",
    "finetune.label_fraction": "share of the training split whose labels are used (few-label curves)",
    "finetune.mode": "full (train everything) or linear (frozen encoder, train the head)",
    "finetune.epochs": "fine-tuning epochs; the test score is read at the best validation epoch",
    "finetune.batch_size": "graphs per fine-tuning batch",
    "finetune.lr": "Adam learning rate",
    "finetune.weight_decay": "Adam weight decay",
    "finetune.dropout": "dropout in the backbone and head while fine-tuning",
    "finetune.head_hidden": "hidden width of an MLP head (empty: linear head)",
    "finetune.seed": "seed of the fine-tuning run (head init, shuffling, label subset)",
    "finetune.save_checkpoints": "write last.pt every epoch and best.pt at the end",
    "finetune.resume": "continue from output_dir/last.pt when it exists",
    "finetune.energy_weight": "energies and forces: weight of the per-atom energy loss",
    "finetune.force_weight": "energies and forces: weight of the force loss",
    "finetune.noisy_nodes_weight": "weight of the auxiliary noisy-nodes denoising loss (geometric backbones; SCD uses 0.1)",
    "finetune.noisy_nodes_sigma": "noise of the noisy-nodes loss, Angstrom",
    "benchmark.methods": "scratch and objectives by name, or mappings {name:, label:, <options>}",
    "benchmark.tasks": "labelled data sets (names or mappings like data:)",
    "benchmark.seeds": "fine-tuning seeds; every method sees the same seeds",
    "benchmark.label_fractions": "label fractions of the training split to run",
    "benchmark.tier": "a name for the report (quick, paper, ...)",
}


def options_text() -> str:
    """Every option with its default and help, for argparse epilogs."""
    lines = ["configuration options (YAML keys; override any with --set key=value):"]
    defaults = RunConfig().to_dict()

    def walk(prefix: str, values: dict) -> None:
        for key, value in values.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict) and name not in HELP:
                walk(f"{name}.", value)
                continue
            shown = "" if isinstance(value, dict) and not value else f" (default: {value})"
            lines.append(f"  {name}{shown}\n      {HELP.get(name, '')}")

    walk("", defaults)
    return "\n".join(lines)


def undocumented() -> list[str]:
    """Option names that have no help line (kept empty by a test)."""
    names = []

    def walk(prefix: str, cls: type) -> None:
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            name = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(hints[f.name]) and name not in HELP:
                walk(f"{name}.", hints[f.name])
            elif name not in HELP:
                names.append(name)

    walk("", RunConfig)
    return names
