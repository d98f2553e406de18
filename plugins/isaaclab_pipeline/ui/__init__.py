"""The robotics engineer's cockpit inside the Airflow UI: the runs view (an Airflow 3 plugin served by the api-server).

``plugin`` declares it (a FastAPI app at ``/isaaclab`` and external views in the navigation and on each run's page),
``app`` serves the page and its JSON, ``runs`` reads the runs from Airflow's DB and their files from the stores.
"""
