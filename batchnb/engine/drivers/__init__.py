"""Built-in scoring scripts, used when a deployment has none (MLflow models, as Azure generates one).

A job records only which driver it uses (``builtin_driver``); the folder is resolved from this
package when the job runs, so a reinstall of batchnb at another path does not break a deployment.
"""

from pathlib import Path

DRIVERS_DIR = Path(__file__).parent
MLFLOW_DRIVER = "mlflow_score.py"
# The file types the MLflow driver reads (Azure: CSV and Parquet for tabular MLflow models).
MLFLOW_SUFFIXES = (".csv", ".parquet", ".pqt")
