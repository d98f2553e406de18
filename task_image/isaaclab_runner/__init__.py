"""isaaclab_runner: runs one isaac-lab-training job spec inside the Isaac Lab environment.

It never imports Airflow; what it shares with the Airflow side is the job spec schema
(include/schemas/job-spec.schema.json) and the staging layout:

    {stagingUri}/progress.json   iteration, max, mean reward (rewritten while training)
    {stagingUri}/runner.log      everything the runner and Isaac Lab printed
    {stagingUri}/run/            the Isaac Lab log folder (params/, events, checkpoints, git/)
    {stagingUri}/result.json     final status, written last
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
