"""The job engine: planning, the supervisor process, the worker side, outputs and logs."""
