"""Built environments: every deployment runs in the Python environment it declares.

An environment's ``conda_file`` or pip requirements file, or an MLflow model's own requirements
(for a model deployed without an environment, as on Azure), is resolved into a build specification
(:mod:`.spec`), built once with uv into ``<workspace>/envs/<hash>/`` and layered over batchnb's own
environment (:mod:`.build`). The engine asks :func:`interpreter_for` which Python runs a job's code
(:mod:`.runtime`); ``workspace gc`` removes the builds no one uses (:mod:`.usage`).
"""

from .runtime import interpreter_for
from .spec import BuildSpec

__all__ = ["BuildSpec", "interpreter_for"]
