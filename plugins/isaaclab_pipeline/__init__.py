"""isaaclab_pipeline: the library behind the isaac-lab-training DAG (MWAA ships it in plugins.zip).

One concern per module: ``config`` (the conf contract), ``settings`` (deployment settings), ``storage``
(s3:// and local URIs), ``resolve`` (JobSpec assembly), ``backends`` (where the job runs), ``operators``
(the job steps), ``metrics`` (TensorBoard → metrics.csv), ``publish`` (output layout and manifest).
Importing this package is cheap: heavy modules are imported inside the functions that need them.
"""
