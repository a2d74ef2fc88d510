"""What the Python API returns: JSON-ready records with attribute access, like azure-ai-ml's entities.

An entity is a ``dict`` (so the CLI can print it as JSON, YAML or a table, and ``--query`` can
search it) that also reads as an object (``job.status``). Front ends add their renderings
(HTML reprs, widgets) on top; the core never imports them.
"""

from __future__ import annotations

from typing import Any


class Entity(dict):  # type: ignore[type-arg]
    """A record returned by the API: a dict whose keys also read as attributes."""

    kind = "entity"

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no field {key!r}") from None

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={self[k]!r}" for k in ("name", "version", "status") if k in self)
        return f"{type(self).__name__}({fields})"

    def _repr_html_(self) -> str:
        from .display import entity_html

        title = " ".join(str(self[k]) for k in ("name", "version") if self.get(k) is not None)
        return entity_html(self, f"{type(self).__name__} {title}")


class Model(Entity):
    """A registered model version."""

    kind = "model"


class Data(Entity):
    """A registered data asset version."""

    kind = "data"


class Environment(Entity):
    """A recorded environment version."""

    kind = "environment"


class Component(Entity):
    """A registered component version."""

    kind = "component"


class Datastore(Entity):
    """A named data root."""

    kind = "datastore"


class Compute(Entity):
    """A compute target."""

    kind = "compute"


class BatchEndpoint(Entity):
    """A batch endpoint."""

    kind = "batch-endpoint"


class BatchDeployment(Entity):
    """A deployment of a batch endpoint."""

    kind = "batch-deployment"
