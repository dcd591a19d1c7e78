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

from graphssl import atomistic, brep, molecule  # noqa: F401  (register data sources, splits, backbones)
from graphssl.bench import run_benchmark
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
from graphssl.core.errors import CheckpointError, ConfigError, DataError, GraphSSLError, MoleculeError
from graphssl.core.registry import Registry
from graphssl.data.dataset import load_dataset
from graphssl.data.sources import SOURCES, catalogue
from graphssl.data.splits import SPLITS, Split, make_split
from graphssl.engine.finetune import FinetuneResult, finetune
from graphssl.engine.pretrain import pretrain
from graphssl.engine.pretrained import load_pretrained
from graphssl.nn import BACKBONES, Encoder, GraphEncoder, build_encoder
from graphssl.nn.features import FeatureSpec
from graphssl.nn.geometric import GeometricBackbone, GeometricEncoder
from graphssl.objectives import (
    OBJECTIVES,
    SCD,
    AttrMask,
    CoordinateDenoising,
    GraphMAE,
    HiGMAE,
    Objective,
    build_objective,
    register_objective,
)
from graphssl.tasks import TASKS, EnergyForcesTask, PropertyTask, SegmentationTask, Task, build_task

__version__ = "0.1.0"

__all__ = [
    "BACKBONES",
    "OBJECTIVES",
    "SCD",
    "SOURCES",
    "SPLITS",
    "TASKS",
    "AttrMask",
    "BenchmarkConfig",
    "CheckpointError",
    "ConfigError",
    "CoordinateDenoising",
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
    "GraphMAE",
    "GraphSSLError",
    "HiGMAE",
    "ModelConfig",
    "MoleculeError",
    "Objective",
    "ObjectiveConfig",
    "PretrainConfig",
    "PropertyTask",
    "Registry",
    "RunConfig",
    "SegmentationTask",
    "Split",
    "Task",
    "build_encoder",
    "build_objective",
    "build_task",
    "catalogue",
    "finetune",
    "load_config",
    "load_dataset",
    "load_pretrained",
    "make_split",
    "pretrain",
    "register_objective",
    "run_benchmark",
]
