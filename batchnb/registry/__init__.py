"""The workspace registry: versioned assets (models, data, environments) and datastores."""

from .assets import AssetOperations, DataOperations, ModelOperations
from .code import snapshot_code
from .environments import EnvironmentOperations
from .targets import DEFAULT_COMPUTE, DatastoreOperations

__all__ = [
    "DEFAULT_COMPUTE",
    "AssetOperations",
    "DataOperations",
    "DatastoreOperations",
    "EnvironmentOperations",
    "ModelOperations",
    "snapshot_code",
]
