#!/bin/sh
# The task image's entrypoint: the isaaclab_runner.
#   docker run IMAGE run --spec s3://.../spec.json      -> python -m isaaclab_runner run --spec ...
#   docker run IMAGE list-tasks                         -> python -m isaaclab_runner list-tasks
#   AWS Batch's command override "python -m isaaclab_runner run --spec URI" (a full command) runs as given,
#   so both the documented short form and the Batch backend's explicit form work.
set -e
case "${1:-}" in
  run|list-tasks|mirror-assets|-*|"") exec python -m isaaclab_runner "$@" ;;
  *) exec "$@" ;;
esac
