"""Featurised molecule data sets and the recipe that builds them from molecule records."""

from __future__ import annotations

from typing import Any, Callable

from torch_geometric.data import Data

from graphssl.core.config import DataConfig
from graphssl.data.builder import Featurised, Recipe
from graphssl.data.records import BuildReport, Source, rules_key
from graphssl.data.store import TensorStore
from graphssl.data.stored import StoredGraphs
from graphssl.data.tasks import select_tasks
from graphssl.molecule.features import FEATURIZER_VERSION, molecule_feature_spec
from graphssl.molecule.featurise import MOLECULE_FIELDS, duplicate_reason, featurise_record, record_text
from graphssl.molecule.tables import MoleculeRecord
from graphssl.nn.features import FeatureSpec


class MoleculeGraphsMixin:
    """What every data set of featurised molecules tells encoders and heads (in memory or sharded)."""

    task_names: list[str]

    @property
    def feature_spec(self) -> FeatureSpec:
        """The categorical layout of atom and bond features (for building encoders)."""
        return molecule_feature_spec()

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)


class MoleculeDataset(MoleculeGraphsMixin, StoredGraphs):
    """A featurised data set: ``dataset[i]`` is a ``Data`` with ``x``, ``edge_index``,
    ``edge_attr``, ``y`` (shape ``[1, num_tasks]``, NaN = missing) and ``smiles``."""

    @property
    def smiles(self) -> list[str]:
        smiles = self.store.strings["smiles"]
        return [smiles[int(i)] for i in self.indices]


class MoleculeRecipe(Recipe):
    """Molecule records (SMILES, SDF molecules) to OGB-featurised graphs."""

    fields = MOLECULE_FIELDS
    store_file = "graphs.pt"
    noun, plural, unit = "record", "records", "mol"

    def cache_entries(self, source: Source, config: DataConfig) -> dict[str, Any]:
        entries = {
            "featurizer": FEATURIZER_VERSION,
            "source": source.identity,
            "explicit_h": config.explicit_h,
            "conformer": config.conformer,
            # which molecules get a conformer (or are skipped) depends on these, only when conformers are made
            **({"conformer_max_atoms": config.conformer_max_atoms, "conformer_timeout": config.conformer_timeout}
               if config.conformer else {}),
            "on_error": config.on_error,
            "tasks": source.task_names,
            **rules_key(config, source.labelled),
        }
        if config.descriptors is not None:  # absent otherwise, so caches built without them keep their key
            entries["descriptors"] = descriptor_key(config.descriptors)
        return entries

    def featuriser(self, source: Source, config: DataConfig) -> Callable[[MoleculeRecord], Featurised]:
        labelled = source.labelled

        def featurise(record: MoleculeRecord) -> Featurised:
            data, reason = featurise_record(record, config, labelled)
            return ([] if data is None else [data]), reason

        return featurise

    def describe(self, record: MoleculeRecord) -> str:
        return record_text(record)

    def duplicate_key(self, record: MoleculeRecord, graphs: list[Data]) -> object:
        return graphs[0].smiles  # canonical, so one molecule has one key however it was written

    def duplicate_reason(self, earlier: int, earlier_text: str, graphs: list[Data]) -> str:
        return duplicate_reason(earlier, graphs[0].smiles)

    def dataset(self, store: TensorStore, source: Source, report: BuildReport, config: DataConfig) -> Any:
        dataset = MoleculeDataset(store, source.name, source.task_names, source.task_type, source.metric, report)
        return select_tasks(dataset, config)


def descriptor_key(set_name: str) -> dict[str, Any]:
    """What identifies a descriptor set in a cache key: its name, its descriptors and the RDKit
    version that computes them (a new release may change values or add descriptors to ``all``)."""
    import rdkit

    from graphssl.molecule.descriptors import descriptor_names  # RDKit, only when descriptors are asked for

    return {"set": set_name, "names": descriptor_names(set_name), "rdkit": rdkit.__version__}


MOLECULE_RECIPE = MoleculeRecipe()
