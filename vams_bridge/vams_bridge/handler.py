"""The Lambda VAMS invokes: store the task token, trigger ``isaac-lab-training`` on MWAA, fail fast if refused.

Handler: ``vams_bridge.handler.lambda_handler``. Environment:

- ``MWAA_ENV_NAME`` (the MWAA environment), or ``AIRFLOW_URL`` (+ ``AIRFLOW_API_TOKEN``) for a self-hosted
  api-server;
- ``TOKEN_PARAMETER_PREFIX`` (default ``/isaac-lab-training/vams``), ``TOKEN_KMS_KEY_ID`` (optional);
- ``DAG_ID`` (default ``isaac-lab-training``), ``DEFAULT_CONF`` (JSON, the pipeline's defaults).

Nothing here logs, returns or forwards the task token; the DAG run's conf carries only ``vams.callback``.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from vams_bridge import airflow_api
from vams_bridge.airflow_api import ApiResponse, HttpApi, MwaaApi
from vams_bridge.payload import (
    BridgeInputError,
    build_conf,
    dag_run_id,
    parse_body,
    run_note,
    task_token,
    trigger_body,
)
from vams_bridge.token_store import DEFAULT_PREFIX, TokenStore

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)

DAG_ID = "isaac-lab-training"
CAUSE_LIMIT = 256  # Step Functions' limit on a failure cause
ERROR_LIMIT = 256

# Every AWS call gives up in bounded time, so that when one hangs the Lambda is still running to fail the task
# token (a Lambda that times out reports nothing; VAMS would wait for its heartbeat timeout). botocore's defaults
# (60 s to connect, 60 s to read, up to 5 attempts) outlast any sensible Lambda timeout. The function's timeout
# (infra/vams-bridge.yaml) stays above worst_case_seconds(); tests/infra/test_infra_bridge.py checks it.
AWS_CLIENT_CONFIG: dict[str, Any] = {"connect_timeout": 3, "read_timeout": 5,
                                     "retries": {"mode": "standard", "total_max_attempts": 3}}
# InvokeRestApi waits up to 10 s for Airflow's answer; botocore does not retry it: airflow_api.with_retries does,
# on throttling and 502/503/504 (a repeated POST of the run id is answered 409).
MWAA_CLIENT_CONFIG: dict[str, Any] = {"connect_timeout": 3, "read_timeout": 15,
                                      "retries": {"mode": "standard", "total_max_attempts": 1}}
# The most calls one invocation makes: SSM put of the token, three S3 reads (manifest, configuration, asset config),
# then on a refusal the claim,
# send_task_failure, the token's and the claim's deletes; and the one trigger through MWAA.
CALLS_PER_INVOCATION = {"aws": 8, "mwaa": 1}


def worst_case_seconds() -> float:
    """The longest one invocation can take if every call hangs until its timeouts and retries run out."""
    def per_call(config: dict[str, Any]) -> float:
        attempts = config["retries"]["total_max_attempts"]
        backoff = sum(min(20, 2 ** i) for i in range(attempts - 1))  # standard mode: random × 2^i s, at most 20 s
        return attempts * (config["connect_timeout"] + config["read_timeout"]) + backoff
    rest_retries = airflow_api.ATTEMPTS * per_call(MWAA_CLIENT_CONFIG) + (airflow_api.ATTEMPTS - 1) * \
        airflow_api.MAX_DELAY_S  # the REST client's own retries of throttling around each MWAA call
    return CALLS_PER_INVOCATION["aws"] * per_call(AWS_CLIENT_CONFIG) + CALLS_PER_INVOCATION["mwaa"] * rest_retries


def clip(text: str, limit: int = CAUSE_LIMIT) -> str:
    """Fit ``text`` into ``limit`` characters, marking a cut with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fail_token(sfn: Any, store: TokenStore, run_id: str, token: str, error: str, cause: str) -> bool:
    """Send ``send_task_failure`` for a run unless it was reported already (the protocol of token_store).

    :return: True if this call sent the failure.
    """
    if not store.claim(run_id, "failure"):
        return False
    try:
        sfn.send_task_failure(taskToken=token, error=clip(error, ERROR_LIMIT),
                              cause=clip(cause.replace(token, "<task token>")))
    except Exception:
        store.release(run_id)  # let the DAG (or a retried Lambda) report instead
        raise
    store.delete(run_id)
    store.release(run_id)
    return True


def _read_json(s3: Any) -> Any:
    def read(uri: str) -> Any:
        if not uri.startswith("s3://"):
            raise BridgeInputError(f"{uri!r} is not an s3:// URI")
        bucket, _, key = uri[len("s3://"):].partition("/")
        try:
            raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            raise BridgeInputError(f"cannot read {uri} ({code})") from None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BridgeInputError(f"{uri} is not valid JSON ({exc.msg} at char {exc.pos})") from None
    return read


def make_api(env: dict[str, str]) -> MwaaApi | HttpApi:
    """Build the Airflow API client the environment names (``MWAA_ENV_NAME`` or ``AIRFLOW_URL``)."""
    if env.get("MWAA_ENV_NAME"):
        import boto3
        from botocore.config import Config

        return MwaaApi(boto3.client("mwaa", config=Config(**MWAA_CLIENT_CONFIG)), env["MWAA_ENV_NAME"])
    if env.get("AIRFLOW_URL"):
        return HttpApi(env["AIRFLOW_URL"], env.get("AIRFLOW_API_TOKEN") or None)
    raise RuntimeError("set MWAA_ENV_NAME (the MWAA environment) or AIRFLOW_URL (a self-hosted api-server)")


def trigger(event: dict[str, Any], *, api: MwaaApi | HttpApi, ssm: Any, sfn: Any, s3: Any,
            dag_id: str = DAG_ID, prefix: str = DEFAULT_PREFIX, kms_key_id: str | None = None,
            defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Handle one VAMS call with the given clients (the Lambda entry point builds them from the environment).

    :return: ``{"statusCode": ..., "body": json}``: 200 with the run id when the run exists, else Airflow's status
        (or 400 for a bad payload) with the reason. On any refusal the task token has been failed already.
    """
    try:
        body = parse_body(event)
    except BridgeInputError as exc:  # no token can be read from it, so there is nothing to fail
        return {"statusCode": 400, "body": json.dumps({"error": "VamsPayloadInvalid", "cause": str(exc)})}
    token = task_token(body)
    run_id = dag_run_id(token)
    store = TokenStore(ssm, prefix, kms_key_id)
    if token:
        store.put(run_id, token)  # before the trigger: the run may fail (and report) at once

    def refuse(status: int, error: str, cause: str) -> dict[str, Any]:
        log.warning("run %s refused: %s", run_id, cause)
        if token:
            fail_token(sfn, store, run_id, token, error, cause)
        return {"statusCode": status, "body": json.dumps({"dagRunId": run_id, "error": error, "cause": cause})}

    try:
        conf = build_conf(body, _read_json(s3), defaults)
    except BridgeInputError as exc:
        return refuse(400, "VamsPayloadInvalid", clip(f"{dag_id} not triggered: {exc}"))

    note = run_note(conf)
    try:
        resp = api.call("POST", f"/dags/{dag_id}/dagRuns", trigger_body(run_id, conf, clip(note, 1000)))
    except Exception as exc:
        return refuse(502, "AirflowUnreachable", clip(f"{dag_id} not triggered: {type(exc).__name__}: {exc}"))
    if resp.ok or resp.status == 409:  # 409: a retried Lambda; the first attempt created the run
        log.info("run %s %s for %s", run_id, "created" if resp.ok else "already exists",
                 conf.get("inputS3AssetFilePath"))
        return {"statusCode": 200, "body": json.dumps({"dagRunId": run_id, "dagId": dag_id})}
    return refuse(resp.status, f"AirflowRefused{resp.status}", refusal_cause(dag_id, resp))


def refusal_cause(dag_id: str, resp: ApiResponse) -> str:
    """A readable, ≤ 256-character cause for a refused trigger, keeping Airflow's detail (it names the field)."""
    what = "refused the conf" if 400 <= resp.status < 500 else "failed to create the run"
    return clip(f"{dag_id} {what} (HTTP {resp.status}): {resp.detail()}")


def lambda_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """AWS Lambda entry point."""
    import boto3
    from botocore.config import Config

    env = dict(os.environ)
    config = Config(**AWS_CLIENT_CONFIG)
    return trigger(event, api=make_api(env), ssm=boto3.client("ssm", config=config),
                   sfn=boto3.client("stepfunctions", config=config), s3=boto3.client("s3", config=config),
                   dag_id=env.get("DAG_ID", DAG_ID),
                   prefix=env.get("TOKEN_PARAMETER_PREFIX", DEFAULT_PREFIX),
                   kms_key_id=env.get("TOKEN_KMS_KEY_ID") or None,
                   defaults=json.loads(env.get("DEFAULT_CONF") or "{}"))
