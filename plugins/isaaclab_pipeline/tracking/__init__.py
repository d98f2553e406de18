"""Experiment tracking of published runs (MLflow, optional: imported only when the deployment sets a tracking URI)."""
