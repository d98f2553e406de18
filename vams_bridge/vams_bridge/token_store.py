"""Where the Step Functions task token waits while the DAG runs: an SSM SecureString keyed by the DAG run id.

The token never travels in the DAG run's conf (the Airflow UI shows ``dag_run.conf`` to every viewer). The
bridge stores it here before triggering; the DAG's callbacks read it by run id, report once, and delete it.

The "report once" protocol (the DAG side, ``isaaclab_pipeline.vams.token_store``, implements the same one):

1. claim: ``put_parameter({prefix}/{run}/reported, Overwrite=False)``; SSM refuses a second claim atomically,
   so of two reporters racing (the task's failure callback and the DAG's) only one goes on;
2. read the token; if it is gone the run was already reported and cleaned up, so release and stop;
3. send the callback, then delete the token and release the claim.
"""

from __future__ import annotations

import re
from typing import Any

DEFAULT_PREFIX = "/isaac-lab-training/vams"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def run_key(run_id: str) -> str:
    """Return the run id as an SSM path segment (only ``A-Za-z0-9_.-`` are allowed there)."""
    return _UNSAFE.sub("_", run_id)


def token_parameter(prefix: str, run_id: str) -> str:
    """Return the SSM parameter name that holds a run's task token."""
    return f"{prefix.rstrip('/')}/{run_key(run_id)}/task-token"


def claim_parameter(prefix: str, run_id: str) -> str:
    """Return the SSM parameter name whose creation claims the run's one final report."""
    return f"{prefix.rstrip('/')}/{run_key(run_id)}/reported"


def _code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


class TokenStore:
    """The task tokens of running DAG runs, in SSM Parameter Store.

    :param ssm: a boto3 SSM client.
    :param prefix: the parameter path all tokens live under (the IAM policies are scoped to it).
    :param kms_key_id: the KMS key of the SecureStrings; None uses the account's ``alias/aws/ssm``.
    """

    def __init__(self, ssm: Any, prefix: str = DEFAULT_PREFIX, kms_key_id: str | None = None) -> None:
        self.ssm = ssm
        self.prefix = prefix
        self.kms_key_id = kms_key_id

    def put(self, run_id: str, token: str) -> str:
        """Store a run's token (overwriting: a retried Lambda stores the same token again); return its name."""
        name = token_parameter(self.prefix, run_id)
        args: dict[str, Any] = {"Name": name, "Value": token, "Type": "SecureString", "Overwrite": True,
                                "Description": "Step Functions task token of one isaac-lab-training run"}
        if self.kms_key_id:
            args["KeyId"] = self.kms_key_id
        self.ssm.put_parameter(**args)
        return name

    def get(self, run_id: str) -> str | None:
        """Return the run's token, or None once it has been reported (or was never stored)."""
        try:
            resp = self.ssm.get_parameter(Name=token_parameter(self.prefix, run_id), WithDecryption=True)
        except Exception as exc:
            if _code(exc) == "ParameterNotFound":
                return None
            raise
        return resp["Parameter"]["Value"]

    def claim(self, run_id: str, outcome: str) -> bool:
        """Claim the run's final report; False if another reporter holds or used the claim."""
        try:
            self.ssm.put_parameter(Name=claim_parameter(self.prefix, run_id), Value=outcome, Type="String",
                                   Overwrite=False)
        except Exception as exc:
            if _code(exc) == "ParameterAlreadyExists":
                return False
            raise
        return True

    def release(self, run_id: str) -> None:
        """Drop the claim (after the token is deleted, or so that a retry may report)."""
        self._delete(claim_parameter(self.prefix, run_id))

    def delete(self, run_id: str) -> None:
        """Delete the run's token: it has been reported, or can no longer be."""
        self._delete(token_parameter(self.prefix, run_id))

    def _delete(self, name: str) -> None:
        try:
            self.ssm.delete_parameter(Name=name)
        except Exception as exc:
            if _code(exc) != "ParameterNotFound":
                raise
