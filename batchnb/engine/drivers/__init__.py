"""Built-in scoring scripts, used when a deployment has none (MLflow models, as Azure generates one).

A job records only which driver it uses (``builtin_driver``); the folder is resolved from this
package when the job runs, so a reinstall of batchnb at another path does not break a deployment.
"""

from pathlib import Path
from typing import Any

DRIVERS_DIR = Path(__file__).parent
MLFLOW_DRIVER = "mlflow_score.py"
# The file types the MLflow driver reads (Azure: CSV and Parquet for tabular MLflow models).
MLFLOW_SUFFIXES = (".csv", ".parquet", ".pqt")


def mlflow_model_folder(root: Path) -> Path | None:
    """The folder holding the model's ``MLmodel``: ``root`` itself or its first subfolder that has one."""
    if (root / "MLmodel").is_file():
        return root
    found = sorted(root.glob("*/MLmodel"))
    return found[0].parent if found else None


def read_mlmodel(folder: Path) -> dict[str, Any]:
    """``folder/MLmodel`` as a mapping; empty if it cannot be read (MLflow's own load says why)."""
    from ...errors import ValidationError
    from ...specfile import load_yaml

    try:
        return load_yaml(folder / "MLmodel")[0]
    except ValidationError:
        return {}


def mlflow_flavors(folder: Path) -> dict[str, Any]:
    """The ``flavors`` of ``folder/MLmodel``; empty if it cannot be read."""
    flavors = read_mlmodel(folder).get("flavors")
    return dict(flavors) if isinstance(flavors, dict) else {}
