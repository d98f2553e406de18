"""Per-run Hydra overrides (``trainingConfig.overrides``, ``sweep.grid``): the grammar, checked before any GPU time.

An override is ``<key>=<value>``:

- the key is a dotted path under ``env.`` or ``agent.`` (identifiers only: no ``hydra.`` keys, no ``+``/``~``/``++``
  prefixes, no ``@package``, no list indexes);
- the value is a JSON scalar: a number (``3e-4``, ``10``), ``true``/``false``/``null``, or a string, bare
  (``adaptive``) or quoted (``"adaptive"``, ``'adaptive'``) from a small character set (letters, digits,
  ``_ . : / @ + -``); no lists, no ``${...}`` interpolation, no spaces or shell characters.

Each entry is normalized to one canonical text, the one the job gets and ``training-config.json`` records:
numbers as written, ``true``/``false``/``null`` in lower case, strings single-quoted (``key='adaptive'``). Isaac
Lab 3 types a value with ``ast.literal_eval`` and Isaac Lab 2.x through Hydra's grammar; both read the canonical
text as the same JSON type (a quoted string stays a string even when it reads like a number).

Keys the conf already sets through its own fields (seed, number of envs, iterations, device) are refused, so a run
is described one way only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

MAX_OVERRIDES = 32
MAX_KEY = 200
MAX_STRING = 128
ROOTS = ("env", "agent")
KEY_RE = re.compile(r"^(env|agent)(\.[A-Za-z_][A-Za-z0-9_]*)+$")
NUMBER_RE = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$")
WORD_RE = re.compile(r"^[A-Za-z0-9_.:/@+-]+$")
# keys a conf field already sets (the runner passes them as flags or overrides of its own)
RESERVED = {
    "env.seed": "trainingConfig.seed (or sweep.seeds)",
    "agent.seed": "trainingConfig.seed (or sweep.seeds)",
    "agent.params.seed": "trainingConfig.seed (or sweep.seeds)",
    "env.scene.num_envs": "trainingConfig.numEnvs",
    "agent.max_iterations": "trainingConfig.maxIterations",
    "agent.params.config.max_epochs": "trainingConfig.maxIterations",
    "agent.trainer.timesteps": "trainingConfig.maxIterations",
    "agent.device": "the deployment's device (Variable isaaclab_device)",
    "env.sim.device": "the deployment's device (Variable isaaclab_device)",
    "agent.params.config.device": "the deployment's device (Variable isaaclab_device)",
    "agent.params.config.device_name": "the deployment's device (Variable isaaclab_device)",
    "agent.logger": "the pipeline: metrics come from TensorBoard event files; MLflow tracking is the deployment's "
                    "(docs/experiments.md)",
}
# what a JSON Schema "pattern" can check of one entry (the UI form and the REST API refuse the rest early)
SCHEMA_PATTERN = (r"^(env|agent)(\.[A-Za-z_][A-Za-z0-9_]*)+=(-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?"
                  r"|[A-Za-z0-9_.:/@+-]+|" '"[A-Za-z0-9_.:/@+-]*"' r"|'[A-Za-z0-9_.:/@+-]*')$")


class OverrideError(ValueError):
    """One override entry breaks the grammar; the message says why and how to write it."""


def check_key(key: Any) -> str:
    """Return ``key`` if it is an allowed override key.

    :raises OverrideError: naming the rule it breaks.
    """
    if not isinstance(key, str):
        raise OverrideError(f"the key {_show(key)} is not a string")
    if not key:
        raise OverrideError("the key is empty; write <env|agent>.<path>=<value>")
    if len(key) > MAX_KEY:
        raise OverrideError(f"the key is longer than {MAX_KEY} characters")
    if key[0] in "+~":
        raise OverrideError(f"{_show(key)}: '+'/'~' prefixes (add or delete a config key) are not allowed; set an "
                            "existing key as <env|agent>.<path>=<value>")
    if key == "hydra" or key.startswith("hydra."):
        raise OverrideError(f"{_show(key)}: hydra.* keys are not allowed (they change Hydra itself: output dirs, "
                            "launchers); only env.* and agent.* keys are")
    if "${" in key or "$" in key:
        raise OverrideError(f"{_show(key)}: '$' and ${{...}} interpolation are not allowed")
    if "@" in key:
        raise OverrideError(f"{_show(key)}: '@package' keys are not allowed; write <env|agent>.<path>=<value>")
    root = key.split(".", 1)[0]
    if root not in ROOTS:
        raise OverrideError(f"{_show(key)}: unknown root {root!r}; keys start with env. (the environment's config) "
                            "or agent. (the RL library's config)")
    if not KEY_RE.match(key):
        raise OverrideError(f"{_show(key)}: a key is a dotted path of identifiers (letters, digits, '_'; no list "
                            "indexes, spaces or other characters), e.g. agent.algorithm.learning_rate")
    if key in RESERVED:
        raise OverrideError(f"{_show(key)}: set by {RESERVED[key]}, not by an override")
    return key


def parse_value(text: str) -> Any:
    """Return the JSON scalar an override's value text stands for.

    :raises OverrideError: for lists, interpolation, characters outside the string set, or a bad number.
    """
    if "${" in text or "$" in text:
        raise OverrideError(f"the value {_show(text)}: '$' and ${{...}} interpolation are not allowed")
    if text.lower() in ("true", "false", "null"):
        return {"true": True, "false": False, "null": None}[text.lower()]
    if NUMBER_RE.match(text):
        value = json.loads(text)
        if isinstance(value, float) and not math.isfinite(value):
            raise OverrideError(f"the value {_show(text)} is not a finite number")
        return value
    if text and text[0] in "[{(":
        raise OverrideError(f"the value {_show(text)} is a list or mapping; only JSON scalars (a number, true, "
                            "false, null or a string) are allowed")
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        inner = text[1:-1]
        return check_string(inner)
    if not text:
        raise OverrideError("the value is empty; write a number, true, false, null or a string ('' for an empty "
                            "string)")
    if text[0] in "\"'" or text[-1] in "\"'":
        raise OverrideError(f"the value {_show(text)} has an unbalanced quote")
    if re.fullmatch(r"[+-]?(\d[\d_]*)?\.?\d[\d_.eE+-]*", text):
        raise OverrideError(f"the value {_show(text)} is not a JSON number (write e.g. 0.0003, 3e-4 or 10)")
    return check_string(text)


def check_string(text: str) -> str:
    """Return ``text`` if it is an allowed string value.

    :raises OverrideError: naming the characters allowed.
    """
    if len(text) > MAX_STRING:
        raise OverrideError(f"the string {_show(text)} is longer than {MAX_STRING} characters")
    if text and not WORD_RE.match(text):
        raise OverrideError(f"the string {_show(text)} holds characters that are not allowed; strings may hold "
                            "letters, digits and _ . : / @ + - only (no spaces, quotes, $, ;, |, &, `, <, >)")
    return text


def format_value(value: Any) -> str:
    """The canonical text of a JSON scalar: what Isaac Lab 3 (``ast.literal_eval``) and 2.x (Hydra) both read back
    as that value and type.

    :raises OverrideError: for a value that is not an allowed JSON scalar.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise OverrideError(f"{value!r} is not a finite number")
        return json.dumps(value)
    if isinstance(value, str):
        return f"'{check_string(value)}'"
    raise OverrideError(f"{_show(value)} is {type(value).__name__}; only JSON scalars (a number, true, false, null "
                        "or a string) are allowed")


def parse(entry: Any) -> tuple[str, Any, str]:
    """Parse one ``key=value`` entry.

    :return: (key, value as a JSON scalar, canonical text).
    :raises OverrideError: naming the rule it breaks.
    """
    if not isinstance(entry, str):
        raise OverrideError(f"{_show(entry)} is not a string; write \"<env|agent>.<path>=<value>\"")
    if "=" not in entry:
        check_key(entry)  # '~agent.x' (delete a key) reads better as a key problem
        raise OverrideError(f"{_show(entry)} has no '='; write <env|agent>.<path>=<value>")
    key, text = entry.split("=", 1)
    key = check_key(key)
    value = parse_value(text)
    return key, value, f"{key}={format_value(value)}"


def problems(entries: Any, field: str) -> tuple[dict[str, str], list[str]]:
    """Check a list of overrides.

    :param entries: the conf's list.
    :param field: its field path, e.g. ``trainingConfig.overrides``.
    :return: (field path -> problem, each naming ``field.<index>`` and the entry; the canonical entries).
    """
    if not isinstance(entries, list):
        return {field: f"{field}: must be a list of \"<env|agent>.<path>=<value>\" strings"}, []
    found: dict[str, str] = {}
    out: list[str] = []
    if len(entries) > MAX_OVERRIDES:
        found[field] = f"{field}: {len(entries)} overrides; at most {MAX_OVERRIDES}"
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries[:MAX_OVERRIDES]):
        where = f"{field}.{i}"
        try:
            key, _value, text = parse(entry)
        except OverrideError as exc:
            found[where] = f"{where}: {exc}"
            continue
        if key in seen:
            found[where] = f"{where}: {key} is already set by entry {seen[key]}; keep one"
        seen[key] = i
        out.append(text)
    return found, out


def keys(entries: Iterable[str]) -> list[str]:
    """The keys of canonical entries."""
    return [e.split("=", 1)[0] for e in entries]


def _show(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
