"""Exception types. Each message names the offending input and what is wrong with it."""


class GraphSSLError(Exception):
    """Base class of every error graphssl raises on purpose."""


class MoleculeError(GraphSSLError, ValueError):
    """A molecule (SMILES, Mol or SDF record) cannot be turned into a graph."""


class DataError(GraphSSLError, ValueError):
    """A data set, file or record is malformed."""


class ConfigError(GraphSSLError, ValueError):
    """A configuration value or option name is invalid."""


class CheckpointError(GraphSSLError, RuntimeError):
    """A checkpoint file is missing, truncated or not a graphssl checkpoint."""


class RunInterrupted(GraphSSLError):
    """A run stopped on request (SIGTERM) after writing a checkpoint it can resume from."""


class TrainingDiverged(GraphSSLError, RuntimeError):
    """A loss, gradient or weight became NaN or infinite; nothing non-finite was written."""
