"""Developer tools of the pipeline (``make run``/``demo``/``list-tasks``, trigger and status over the REST API, the
configuration doc's field table). Not runtime code: MWAA's plugins.zip does not carry them."""
