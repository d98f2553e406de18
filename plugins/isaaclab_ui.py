"""Airflow's plugin loader imports the files of the plugins folder; this one declares the Isaac Lab runs view.

The code lives in ``isaaclab_pipeline/ui/`` (hidden from the loader by ``.airflowignore``; imported from
``sys.path``, where Airflow puts the plugins folder).
"""

from isaaclab_pipeline.ui.plugin import IsaacLabUIPlugin

__all__ = ["IsaacLabUIPlugin"]
