"""VAMS integration on the Airflow side: report a run's outcome to the Step Functions task token VAMS waits on.

``callbacks`` holds the DAG's callbacks and the wait step's heartbeat hook; ``token_store`` is where the token
waits (never in the conf). The Lambda that triggers runs for VAMS lives apart, in ``vams_bridge/``.
"""
