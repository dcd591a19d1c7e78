"""The model zoo: pretrained encoders that ship inside graphssl and load offline by name.

Each entry is a folder ``graphssl/zoo/entries/<name>/`` holding

* ``weights.safetensors``: the encoder's tensors (no pickle), plus PNA's degree histogram
  under ``deg`` when there is one;
* ``card.json``: the model card. The architecture (``model``), the objective and the state it
  exported with the encoder, the data, the optimiser and budget, wall time and machine, final
  loss, license, downstream results with the commands that produced them, and the sha256 of
  the weights file, checked before every load.

``graphssl zoo list`` / ``graphssl zoo show NAME`` print them; ``finetune.pretrained: zoo:NAME``
and ``--checkpoint zoo:NAME`` fine-tune from them; :func:`load` returns a ready encoder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from graphssl.brep.dataset import DEFAULT_GRID
from graphssl.brep.encoders import brep_feature_spec
from graphssl.core.config import DataConfig, ModelConfig, from_dict
from graphssl.core.errors import CheckpointError, ConfigError
from graphssl.core.io import atomic_write_bytes, atomic_write_text
from graphssl.data.dataset import domain_of
from graphssl.nn import GraphEncoder, build_encoder
from graphssl.nn.features import FeatureSpec
from graphssl.molecule.features import molecule_feature_spec
from graphssl.objectives.registry import OBJECTIVES

__all__ = ["ENTRIES", "PREFIX", "ZooWeights", "card", "card_markdown", "entry_dir", "is_zoo_name", "load",
           "names", "read", "verify", "write_entry"]

ENTRIES = Path(__file__).resolve().parent / "entries"
PREFIX = "zoo:"
CARD_FORMAT = "graphssl-zoo/1"
WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "card.json"
_DEG_KEY = "deg"
_ENCODER_PREFIX = "encoder."


@dataclass
class ZooWeights:
    """What fine-tuning needs from a zoo entry (the same fields as a pretrained ``encoder.pt``)."""

    name: str
    model: ModelConfig
    weights: dict[str, torch.Tensor]
    deg: torch.Tensor | None
    objective: str
    objective_state: dict[str, Any]
    feature_spec: dict[str, Any]  # {"domain": ..., plus what sizes the input embeddings}


def _root(root: Path | None) -> Path:
    return Path(root) if root is not None else ENTRIES  # read at call time, so tests can point it elsewhere


def is_zoo_name(value: object) -> bool:
    """Whether a checkpoint argument names a zoo entry (``zoo:NAME``)."""
    return isinstance(value, str) and value.startswith(PREFIX)


def names(root: Path | None = None) -> list[str]:
    """The entries in the zoo, sorted."""
    root = _root(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CARD_FILE).is_file())


def entry_dir(name: str, root: Path | None = None) -> Path:
    """The folder of entry ``name`` (``zoo:`` prefix allowed); a clear error for an unknown one."""
    name = name.removeprefix(PREFIX)
    folder = _root(root) / name
    if not name or "/" in name or "\\" in name or name.startswith(".") or not (folder / CARD_FILE).is_file():
        known = names(root)
        close = [n for n in known if name and (name in n or n in name)]
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"no zoo entry named '{name}'; the zoo has: {', '.join(known) or 'no entries'} "
                          f"(`graphssl zoo list`).{hint}")
    return folder


def card(name: str, root: Path | None = None) -> dict[str, Any]:
    """The model card of entry ``name`` as a dict."""
    path = entry_dir(name, root) / CARD_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"zoo card '{path}' cannot be read ({exc}); reinstall graphssl") from None
    if not isinstance(data, dict) or data.get("format") != CARD_FORMAT:
        raise CheckpointError(f"zoo card '{path}' is not a {CARD_FORMAT!r} card; reinstall graphssl")
    return data


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(name: str, root: Path | None = None) -> Path:
    """The weights file of entry ``name`` once its sha256 matches the card's; else a clear error."""
    info = card(name, root)
    path = entry_dir(name, root) / info["weights"]["file"]
    if not path.is_file():
        raise CheckpointError(f"zoo entry '{info['name']}': weights file '{path}' is missing; reinstall graphssl")
    found, expected = sha256_of(path), info["weights"]["sha256"]
    if found != expected:
        raise CheckpointError(
            f"zoo entry '{info['name']}': weights file '{path}' has sha256 {found}, but its card says {expected}: "
            "the file is corrupted or was edited; reinstall graphssl (or restore the file) to use this entry")
    return path


def read(name: str, root: Path | None = None) -> ZooWeights:
    """Config, verified weights and objective state of entry ``name``."""
    info = card(name, root)
    path = verify(name, root)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"zoo entry '{info['name']}': '{path}' is not a readable safetensors file "
                              f"({exc})") from None
    weights = {k[len(_ENCODER_PREFIX):]: v for k, v in tensors.items() if k.startswith(_ENCODER_PREFIX)}
    return ZooWeights(info["name"], from_dict(ModelConfig, info["model"]), weights, tensors.get(_DEG_KEY),
                      info["objective"]["name"], dict(info.get("objective_state") or {}), info["feature_spec"])


def feature_spec_of(spec: dict[str, Any]) -> FeatureSpec | None:
    """The input-embedding layout an entry was pretrained with (None for geometric backbones)."""
    domain = spec.get("domain")
    if domain == "molecule":
        return molecule_feature_spec()
    if domain == "brep":
        return brep_feature_spec(int(spec["grid"]))
    if domain == "atomistic":
        return None
    raise CheckpointError(f"zoo card names an unknown feature layout {spec!r}; upgrade graphssl")


def build(weights: ZooWeights) -> GraphEncoder:
    """The encoder of a zoo entry with its weights loaded (training mode, CPU)."""
    spec = weights.feature_spec
    encoder = build_encoder(weights.model, feature_spec_of(spec), deg=weights.deg,
                            cutoff=float(spec.get("cutoff", 5.0)))
    if weights.objective_state:
        OBJECTIVES.get(weights.objective).restore_encoder(encoder, weights.objective_state)
    encoder.load_state_dict(weights.weights)
    return encoder


def load(name: str, device: str | torch.device = "cpu", root: Path | None = None) -> GraphEncoder:
    """A ready encoder from the zoo, in eval mode on ``device``: ``graphssl.zoo.load("gine-attrmask-moses")``."""
    return build(read(name, root)).to(device).eval()


def write_entry(name: str, root: Path, *, encoder_state: dict[str, torch.Tensor], model: ModelConfig | dict,
                objective: dict[str, Any], objective_state: dict[str, Any], feature_spec: dict[str, Any],
                deg: torch.Tensor | None = None, **fields: Any) -> Path:
    """Write entry ``name`` under ``root``: safetensors weights, then the card with their sha256.

    ``fields`` go into the card as they are (data, pretrain budget, machine, license, ...).
    """
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"zoo entry name {name!r} must be a plain folder name")
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    # safetensors refuses shared or non-contiguous storage: give every tensor its own copy
    tensors = {_ENCODER_PREFIX + k: v.detach().cpu().contiguous().clone() for k, v in encoder_state.items()}
    if deg is not None:
        tensors[_DEG_KEY] = deg.detach().cpu().contiguous().clone()
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"zoo entry '{name}': tensors {', '.join(bad[:3])} hold NaN or inf; refusing to ship them")
    weights_path = atomic_write_bytes(save(tensors, metadata={"format": CARD_FORMAT, "name": name}),
                                      folder / WEIGHTS_FILE)
    model_dict = dataclasses.asdict(model) if isinstance(model, ModelConfig) else dict(model)
    parameters = sum(v.numel() for k, v in encoder_state.items() if v.is_floating_point())
    info = {
        "format": CARD_FORMAT,
        "name": name,
        **fields,
        "model": model_dict,
        "objective": objective,
        "objective_state": objective_state,
        "feature_spec": feature_spec,
        "weights": {"file": WEIGHTS_FILE, "sha256": sha256_of(weights_path),
                    "bytes": weights_path.stat().st_size, "parameters": parameters},
    }
    atomic_write_text(json.dumps(info, indent=1) + "\n", folder / CARD_FILE)
    return folder


def update_card(name: str, root: Path | None = None, **fields: Any) -> dict[str, Any]:
    """Set card fields of an existing entry (e.g. ``results`` once the benchmark has run)."""
    info = card(name, root)
    info.update(fields)
    atomic_write_text(json.dumps(info, indent=1) + "\n", entry_dir(name, root) / CARD_FILE)
    return info


def entry_from_pretrained(payload: dict[str, Any], name: str, root: Path | None = None, *, description: str = "",
                          command: str = "", machine: str = "", license: str = "MIT") -> Path:
    """Turn the payload of a pretrained ``encoder.pt`` (``graphssl pretrain``) into zoo entry ``name``.

    The card's budget comes from the run's own history and config: epochs, steps, graph passes,
    summed epoch wall time and final loss, so nothing on it is typed in by hand.
    """
    if payload.get("kind") != "pretrained-encoder":
        raise ConfigError(f"zoo entries are made from a pretrained encoder.pt, not a {payload.get('kind')!r} checkpoint")
    config = payload["config"]
    data = from_dict(DataConfig, config["data"])
    domain = domain_of(data)
    # what shapes the input graphs: an encoder sees graphs built the way it was pretrained on
    spec: dict[str, Any] = {"domain": domain}
    if domain == "molecule":
        spec["explicit_h"] = data.explicit_h
    if domain == "brep":
        spec["grid"] = DEFAULT_GRID
    if domain == "atomistic":
        spec["cutoff"] = data.cutoff
        spec["max_neighbors"] = data.max_neighbors
    history = payload.get("history") or []
    pre = config["pretrain"]
    steps = int(history[-1]["steps"]) if history else 0  # the history counts steps cumulatively
    budget = {
        "optimiser": "Adam", "lr": pre["lr"], "weight_decay": pre["weight_decay"], "batch_size": pre["batch_size"],
        "epochs": len(history), "steps": steps, "graph_passes": steps * int(pre["batch_size"]),
        "wall_time_s": round(sum(float(h.get("seconds", 0.0)) for h in history), 1),
        "final_loss": round(float(history[-1]["loss"]), 5) if history else None,
        "batch_norm_graphs": int(payload.get("batch_norm_graphs", 0)),
        "processes": int(payload.get("processes", 1)),
        "threads": config.get("threads"),
    }
    options = {k: v for k, v in config["objective"].items() if k not in ("name", "options")}
    options.update(config["objective"].get("options") or {})
    if payload.get("corpus"):  # data.sources: the card names every data set with its own count
        parts = data.parts()
        source = "+".join(str(p.name or p.path) for p, _ in parts)
        records = sum(int(row["records"]) for row in payload["corpus"])
        described = "; ".join(
            _records_text(int(row["records"]), str(part.name or part.path), part.offset)
            + (f", each {repeat} times per epoch" if repeat > 1 else "")
            for row, (part, repeat) in zip(payload["corpus"], parts))
        data_card = {"name": source, "records": records, "offset": 0, "sources": payload["corpus"],
                     "description": f"{described}; labels unused"}
    else:
        records = data.limit or (budget["graph_passes"] // max(budget["epochs"], 1))
        source = data.name or data.path
        data_card = {"name": source, "records": records, "offset": data.offset,
                     "description": f"{_records_text(records, source, data.offset)}, labels unused"}
    return write_entry(
        name, _root(root), encoder_state=payload["encoder"], model=payload["model"],
        objective={"name": payload["objective_name"], "options": options},
        objective_state=dict(payload.get("objective_state") or {}), feature_spec=spec, deg=payload.get("deg"),
        description=description, license=license, command=command, machine=machine,
        data=data_card,
        pretrain=budget, seed=config.get("seed"), versions=payload.get("versions", {}), results=[],
    )


def _records_text(records: int, source: str, offset: int) -> str:
    first = f"the first {records:,}" if not offset else f"{records:,} (from record {offset:,})"
    return f"{first} records of {source}"


def _human(n: float) -> str:
    for unit in ("", "k", "M", "G"):
        if abs(n) < 1000:
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}T"


def summary_rows(root: Path | None = None) -> list[dict[str, str]]:
    """One row per entry for ``graphssl zoo list``."""
    rows = []
    for name in names(root):
        info = card(name, root)
        model, budget = info["model"], info.get("pretrain", {})
        rows.append({
            "name": name,
            "domain": info["feature_spec"]["domain"],
            "objective": info["objective"]["name"],
            "backbone": f"{model['backbone']} {model['num_layers']}x{model['hidden']}",
            "parameters": _human(info["weights"]["parameters"]),
            "size": f"{info['weights']['bytes'] / 1e6:.1f} MB",
            "data": f"{info.get('data', {}).get('name', '?')} ({_human(info.get('data', {}).get('records', 0))})",
            "graph passes": _human(budget.get("graph_passes", 0)),
        })
    return rows


def card_markdown(name: str, root: Path | None = None) -> str:
    """The model card of entry ``name`` as Markdown (``graphssl zoo show NAME``)."""
    info = card(name, root)
    model, objective = info["model"], info["objective"]
    data, budget, weights = info.get("data", {}), info.get("pretrain", {}), info["weights"]
    lines = [f"# {info['name']}", "", info.get("description", ""), ""]
    lines += [
        "| | |", "|---|---|",
        f"| domain | {info['feature_spec']['domain']} |",
        f"| backbone | {model['backbone']}, {model['num_layers']} layers x {model['hidden']}, norm {model['norm']}, "
        f"pooling {model['pooling']} |",
        f"| objective | {objective['name']} {json.dumps(objective.get('options', {}))} |",
        f"| data | {data.get('description', data.get('name', '?'))} |",
        f"| optimiser | {budget.get('optimiser', '?')}, lr {budget.get('lr', '?')}, weight decay "
        f"{budget.get('weight_decay', '?')}, batch {budget.get('batch_size', '?')} |",
        f"| budget | {budget.get('epochs', '?')} epochs, {budget.get('steps', '?')} steps, "
        f"{budget.get('graph_passes', '?')} graph passes |",
        f"| wall time | {budget.get('wall_time_s', 0) / 3600:.2f} h on {info.get('machine', '?')}, "
        f"{budget.get('threads') or 'default'} torch thread(s), {budget.get('processes', 1)} process(es) |",
        f"| final loss | {budget.get('final_loss', '?')} |",
        f"| batch-norm statistics | re-estimated on {budget.get('batch_norm_graphs', 0)} clean graphs |",
        f"| weights | {weights['file']}, {weights['parameters']} parameters, {weights['bytes']} bytes, "
        f"sha256 {weights['sha256']} |",
        f"| license | {info.get('license', '?')} |",
        f"| versions | {', '.join(f'{k} {v}' for k, v in info.get('versions', {}).items())} |",
    ]
    if info.get("command"):
        lines += ["", "Pretrained with:", "", f"    {info['command']}"]
    results = info.get("results") or []
    if results:
        lines += ["", "## Downstream results", ""]
        for block in results:
            lines += [block.get("title", ""), "", *block.get("table", []), "",
                      f"Command: `{block.get('command', '?')}`; {block.get('machine', '')}", ""]
    else:
        lines += ["", "Downstream results: not measured yet."]
    return "\n".join(lines).rstrip() + "\n"
