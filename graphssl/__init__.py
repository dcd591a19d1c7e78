"""graphssl: self-supervised pretraining of graph neural networks on molecules, crystals and CAD parts.

The names a user composes with::

    import graphssl as gs

    data = gs.load_dataset(gs.DataConfig(name="moses", limit=10_000))
    encoder = gs.build_encoder(gs.ModelConfig(backbone="gine"), data.feature_spec)
    objective = gs.GraphMAE(encoder, mask_rate=0.25)      # loss = objective(batch)

    gs.pretrain(gs.load_config("configs/pretrain_graphmae.yaml"))   # the command-line loops
    gs.finetune(config, checkpoint="runs/pretrain-graphmae/encoder.pt")

Importing the package registers the three domains (molecules, atomistic structures, B-rep
parts) into the core registries; none of their optional dependencies (RDKit, vesin, ASE,
pymatgen, OCP) is imported until a reader or featuriser of that domain runs.
"""

from typing import Any

from graphssl import atomistic, brep, molecule  # noqa: F401  (register data sources, splits, backbones)
from graphssl import zoo
from graphssl.atomistic.emt import generate_emt
from graphssl.bench import run_benchmark
from graphssl.brep.encoders import brep_feature_spec
from graphssl.core.config import (
    BenchmarkConfig,
    DataConfig,
    FinetuneConfig,
    ModelConfig,
    ObjectiveConfig,
    PretrainConfig,
    RunConfig,
    load_config,
)
from graphssl.core.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    GraphSSLError,
    MoleculeError,
    TrainingDiverged,
)
from graphssl.core.registry import Registry
from graphssl.data.dataset import load_dataset
from graphssl.data.packaged import packaged_file
from graphssl.data.sources import SOURCES, catalogue
from graphssl.data.splits import SPLITS, Split, make_split
from graphssl.engine.embed import embed
from graphssl.engine.finetune import FinetuneResult, finetune
from graphssl.engine.pretrain import pretrain
from graphssl.engine.pretrained import load_pretrained
from graphssl.nn import BACKBONES, Encoder, GraphEncoder, build_encoder
from graphssl.nn.features import FeatureSpec
from graphssl.molecule.features import molecule_feature_spec
from graphssl.nn.geometric import GeometricBackbone, GeometricEncoder
from graphssl.objectives import (
    OBJECTIVES,
    SCD,
    AttrMask,
    BRepMAE,
    JEPA,
    CoordinateDenoising,
    DescriptorPrediction,
    GraphCL,
    GraphMAE,
    HiGMAE,
    Objective,
    build_objective,
    register_objective,
)
from graphssl.tasks import TASKS, EnergyForcesTask, PropertyTask, SegmentationTask, Task, build_task
from graphssl.transforms.coarsen import Coarsen

__version__ = "0.1.0"

# mol_from_smiles, mol_to_data and smiles_to_data (RDKit) and generate_brep_parts (OCP) are
# loaded on first use, so that `import graphssl` needs no optional dependency.
def __getattr__(name: str) -> Any:
    if name in ("mol_from_smiles", "mol_to_data", "smiles_to_data"):
        from graphssl.molecule import adapter

        return getattr(adapter, name)
    if name == "PretrainedFeaturizer":  # scikit-learn is imported only when the featuriser is used
        from graphssl.sklearn import PretrainedFeaturizer

        return PretrainedFeaturizer
    if name == "generate_brep_parts":
        from graphssl.brep.generate import generate_dataset

        return generate_dataset
    raise AttributeError(f"module 'graphssl' has no attribute '{name}'")

__all__ = [
    "BACKBONES",
    "OBJECTIVES",
    "SCD",
    "SOURCES",
    "SPLITS",
    "TASKS",
    "AttrMask",
    "BRepMAE",
    "Coarsen",
    "BenchmarkConfig",
    "CheckpointError",
    "ConfigError",
    "CoordinateDenoising",
    "DescriptorPrediction",
    "DataConfig",
    "DataError",
    "Encoder",
    "EnergyForcesTask",
    "FeatureSpec",
    "FinetuneConfig",
    "FinetuneResult",
    "GeometricBackbone",
    "GeometricEncoder",
    "GraphEncoder",
    "GraphCL",
    "GraphMAE",
    "GraphSSLError",
    "HiGMAE",
    "JEPA",
    "ModelConfig",
    "MoleculeError",
    "Objective",
    "ObjectiveConfig",
    "PretrainConfig",
    "PretrainedFeaturizer",
    "PropertyTask",
    "Registry",
    "RunConfig",
    "SegmentationTask",
    "Split",
    "Task",
    "TrainingDiverged",
    "brep_feature_spec",
    "build_encoder",
    "build_objective",
    "build_task",
    "catalogue",
    "embed",
    "finetune",
    "generate_brep_parts",
    "generate_emt",
    "load_config",
    "load_dataset",
    "load_pretrained",
    "zoo",
    "make_split",
    "mol_from_smiles",
    "mol_to_data",
    "molecule_feature_spec",
    "packaged_file",
    "pretrain",
    "register_objective",
    "run_benchmark",
    "smiles_to_data",
]
