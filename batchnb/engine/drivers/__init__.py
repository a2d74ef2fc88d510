"""Built-in scoring scripts, used when a deployment has none (MLflow models, as Azure generates one)."""

from pathlib import Path

DRIVERS_DIR = Path(__file__).parent
MLFLOW_DRIVER = "mlflow_score.py"
