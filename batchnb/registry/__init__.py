"""The workspace registry: versioned assets, datastores and computes."""

from .assets import ComponentOperations, DataOperations, EnvironmentOperations, ModelOperations
from .code import snapshot_code
from .targets import DEFAULT_COMPUTE, ComputeOperations, DatastoreOperations

__all__ = [
    "DEFAULT_COMPUTE",
    "ComponentOperations",
    "ComputeOperations",
    "DataOperations",
    "DatastoreOperations",
    "EnvironmentOperations",
    "ModelOperations",
    "snapshot_code",
]
