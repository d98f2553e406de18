"""VAMS → MWAA bridge: a Lambda that turns a VAMS pipeline call into an ``isaac-lab-training`` DAG run.

Packaged on its own (``vams_bridge/``); it imports neither Airflow nor ``isaaclab_pipeline``.
"""
