"""The trigger form: one typed field per conf field, in sections, and the mapping of its flat submission to the conf.

Airflow's trigger form renders one field per DAG ``Param`` (its JSON Schema picks the widget: ``enum`` a
drop-down, ``examples`` suggestions, ``integer`` a number box with its bounds, ``boolean`` a checkbox; ``section``
groups fields; ``title`` names them). The conf, though, is nested (``trainingConfig.numEnvs``), and a nested
object would be one JSON editor. So the form's Params are the conf's leaves, flat (``numEnvs``), and
:func:`to_nested` puts a submission back into the conf's shape before :func:`isaaclab_pipeline.config.validate_conf`
checks it. Both shapes are accepted everywhere; the REST API and VAMS keep sending the nested conf.

Fields no person fills (``trainingConfig`` and ``computeConfig`` as whole objects, ``vams``, ``workflowName``,
``parameters``) are Params too, so Airflow still refuses a bad nested conf with HTTP 400 at trigger time, but
hidden: Airflow 3.3's form renders a Param whose schema has a truthy ``const`` as a hidden input
(``FlexibleForm/FieldRow``). Their schemas declare JSON Schema draft-04, where ``const`` is not a keyword, so
Airflow's validation (``jsonschema.validate``, which picks the draft from ``$schema``) still applies their real
schema and ignores the marker. ``tests/unit/test_form.py`` checks both halves against the installed Airflow.

Everything is derived from ``include/schemas/training-config.schema.json``: a field added there (say
``trainingConfig.overrides``) becomes a form field; :data:`HINTS` only adds titles, sections and order.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Any

from isaaclab_pipeline.config import DAG_ID, ConfigValidationError
from isaaclab_pipeline.schemas import load_schema

# Nested objects whose leaves become flat form fields, and top-level fields only the VAMS bridge sets.
GROUPS = ("trainingConfig", "computeConfig")
INTERNAL = ("vams",)
WRAPPER = ("workflowName", "parameters")  # the seed's wrapper form of the conf
HIDDEN_MARKER = "isaaclab-hidden"  # the truthy `const` that hides a Param in Airflow 3.3's form
DRAFT_04 = "http://json-schema.org/draft-04/schema#"

SECTION_RUN = "Run"
SECTION_SCALE = "Scale"
SECTION_CHECKPOINTS = "Checkpoints, evaluation and video"
SECTION_EXPERIMENTS = "Experiments"
SECTION_LOCATIONS = "Asset and outputs"

# The user guide's list of built-in environments, offered first among the task suggestions.
GUIDE_TASKS = ("Isaac-Cartpole-v0", "Isaac-Ant-v0", "Isaac-Humanoid-v0", "Isaac-Reach-Franka-v0",
               "Isaac-Lift-Cube-Franka-v0", "Isaac-Cartpole-Direct-v0")
MAX_TASK_SUGGESTIONS = 500

# Per field: (section, title, extra schema keywords for the form). Order here is the order in the form.
HINTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "mode": (SECTION_RUN, "Mode", {"values_display": {
        "train": "train: learn a policy", "evaluate": "evaluate: numEpisodes episodes of a checkpoint",
        "play": "play: run a policy for a bounded number of steps"}}),
    "task": (SECTION_RUN, "Task", {}),
    "rlLibrary": (SECTION_RUN, "RL library", {"values_display": {
        "rsl_rl": "rsl_rl", "skrl": "skrl", "rl_games": "rl_games"}}),
    "seed": (SECTION_RUN, "Seed", {}),
    "recordVideo": (SECTION_RUN, "Record video", {}),
    "numEnvs": (SECTION_SCALE, "Parallel environments", {}),
    "maxIterations": (SECTION_SCALE, "Training iterations", {}),
    "numNodes": (SECTION_SCALE, "Nodes", {}),
    "checkpointPath": (SECTION_CHECKPOINTS, "Checkpoint in the asset", {}),
    "policyS3Uri": (SECTION_CHECKPOINTS, "Checkpoint URI", {}),
    "policyPath": (SECTION_CHECKPOINTS, "Policy to play", {}),
    "resumeCheckpoint": (SECTION_CHECKPOINTS, "Resume from checkpoint", {}),
    "init": (SECTION_CHECKPOINTS, "Start training", {"values_display": {
        "from-scratch": "from scratch: new weights", "warm-start": "warm-start: the checkpoint's weights only",
        "resume": "resume: weights, optimizer and iteration count"}}),
    "numEpisodes": (SECTION_CHECKPOINTS, "Episodes to evaluate", {}),
    "overrides": (SECTION_EXPERIMENTS, "Hydra overrides", {}),
    "sweep": (SECTION_EXPERIMENTS, "Sweep", {}),
    "registry": (SECTION_EXPERIMENTS, "Policy registry", {}),
    "inputS3AssetFilePath": (SECTION_LOCATIONS, "Asset (env package)", {}),
    "outputS3Path": (SECTION_LOCATIONS, "Output location", {}),
}
# Form defaults that differ from the schema's: empty means "the mode's default" (numEnvs: 4096 to train, 100 to
# evaluate or play), so the form cannot send a train-sized numEnvs to an evaluation nobody resized.
FORM_DEFAULTS: dict[str, Any] = {"numEnvs": None}
# Fields the form always sends a value for (a drop-down or a checkbox); the others may be left empty.
REQUIRED = ("mode", "rlLibrary", "recordVideo")
_SCHEMA_ONLY = ("description", "default", "examples", "title")  # keywords the form sets itself


@functools.cache
def fields() -> dict[str, tuple[str, ...]]:
    """Every form field and where it goes in the conf: ``numEnvs`` → ``("trainingConfig", "numEnvs")``.

    Leaves of :data:`GROUPS` are flattened; other top-level fields (the asset, the output, a sweep) map to
    themselves; :data:`INTERNAL` fields are not form fields.

    :raises ValueError: if two fields would share a flat name (the schema grew a clash).
    """
    schema = load_schema()
    out: dict[str, tuple[str, ...]] = {}
    for name, prop in schema["properties"].items():
        if name in INTERNAL:
            continue
        leaves = prop.get("properties", {}).items() if name in GROUPS else [(name, prop)]
        for leaf, _ in leaves:
            path = (name, leaf) if name in GROUPS else (name,)
            if leaf in out or leaf in GROUPS or leaf in INTERNAL or leaf in WRAPPER:
                raise ValueError(f"form field {leaf!r} of {'.'.join(path)} clashes with another field; rename one")
            out[leaf] = path
    return dict(sorted(out.items(), key=lambda kv: (list(HINTS).index(kv[0]) if kv[0] in HINTS else len(HINTS))))


def field_schema(name: str) -> dict[str, Any]:
    """The conf schema's own sub-schema of form field ``name``."""
    node: Any = load_schema()
    for part in fields()[name]:
        node = node["properties"][part]
    return node


def form_default(name: str) -> Any:
    """What the form shows for ``name`` before anyone types: the guide's default (None: empty)."""
    if name in FORM_DEFAULTS:
        return FORM_DEFAULTS[name]
    return copy.deepcopy(field_schema(name).get("default"))


def task_suggestions() -> list[str]:
    """Task ids offered while typing: the schema's examples, the user guide's list, then the image's task list
    (``make list-tasks`` saves it; read by :func:`isaaclab_pipeline.resolve.load_known_tasks`), if saved."""
    from isaaclab_pipeline.resolve import load_known_tasks

    ids = [*field_schema("task").get("examples", []), *GUIDE_TASKS]
    try:
        known = load_known_tasks()
    except (OSError, ValueError):  # a broken list must not break the DAG's parse
        known = None
    if known is not None:
        registered, aliases = known
        ids += sorted(registered) + sorted(aliases)
    return list(dict.fromkeys(ids))[:MAX_TASK_SUGGESTIONS]


def dag_params() -> dict[str, Any]:
    """The DAG's Params: the form's typed fields, then the hidden fields that keep the nested conf checked.

    :return: Param name → ``airflow.sdk.Param``, in form order.
    """
    from airflow.sdk import Param

    params: dict[str, Any] = {}
    for name, path in fields().items():
        prop = field_schema(name)
        section, title, extra = HINTS.get(name, (SECTION_EXPERIMENTS, name, {}))
        schema = _strip_custom_keywords({k: v for k, v in prop.items() if k not in _SCHEMA_ONLY})
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if name not in REQUIRED and "null" not in kinds:
            kinds = [*kinds, "null"]  # an empty field: the conf's default applies
            if "enum" in schema:
                schema["enum"] = [*schema["enum"], None]
        schema["type"] = kinds if len(kinds) > 1 else kinds[0]
        if name == "task":
            schema["examples"] = task_suggestions()
        where = ".".join(path)
        description = prop.get("description", "")
        if name in FORM_DEFAULTS and form_default(name) is None:
            description += " Leave empty for the mode's default."
        params[name] = Param(form_default(name), description=f"{description} (conf: {where})",
                             schema={**schema, **extra, "title": title, "section": section})
    last_section = params[next(reversed(params))].schema["section"]
    for name, prop in hidden_schemas().items():
        params[name] = Param(None, description=prop.pop("description", None),
                             schema={**prop, "section": last_section})
    return params


def hidden_schemas() -> dict[str, dict[str, Any]]:
    """The Params no person fills, hidden from the form (truthy ``const``) but validated with their real schema
    (draft-04, where ``const`` means nothing): the nested objects, ``vams`` and the seed's wrapper."""

    schema = load_schema()
    out: dict[str, dict[str, Any]] = {}
    for name in (*GROUPS, *INTERNAL):
        prop = _strip_custom_keywords({k: v for k, v in schema["properties"][name].items()
                                       if k not in ("default", "examples")})
        prop["type"] = [prop["type"], "null"]
        out[name] = prop
    out["workflowName"] = {"type": ["string", "null"], "enum": [DAG_ID, None],
                           "description": "Only with the seed's wrapper form."}
    out["parameters"] = {"type": ["object", "null"],
                         "description": "The seed's wrapper form: the whole conf inside 'parameters'."}
    for prop in out.values():
        prop.update({"$schema": DRAFT_04, "const": HIDDEN_MARKER})
    return out


def to_nested(conf: Any) -> Any:
    """Put the form's flat fields into the conf's nested shape; a nested conf comes back as it is.

    An empty field (None, "") is left out, so the conf's default applies. When a conf carries both shapes (a
    nested conf pasted into the form's JSON view), a flat field still at the form's default never overrides the
    nested value; a flat field someone changed that disagrees with it is refused.

    :param conf: the DAG run's conf as sent (the form's, the REST API's, VAMS's; bare or wrapped).
    :return: the conf in the nested shape (anything that is not an object is returned for validate_conf to refuse).
    :raises ConfigValidationError: naming both fields when the two shapes disagree.
    """
    if not isinstance(conf, Mapping):
        return conf
    flat = {k: v for k, v in conf.items() if k in fields() and len(fields()[k]) == 2}
    # the form sends every Param: the hidden ones and the fields left empty as null (or "")
    out = {k: copy.deepcopy(v) for k, v in conf.items()
           if k not in flat and v is not None and not (v == "" and k in fields())}
    if not flat:
        return out
    target = out.get("parameters") if isinstance(out.get("parameters"), Mapping) else out
    problems = []
    for name, value in flat.items():
        if value is None or value == "":
            continue
        group, leaf = fields()[name]
        section = target.setdefault(group, {})
        if not isinstance(section, dict):
            problems.append(f"{group}: is {type(section).__name__}, not an object, and the form field {name!r} "
                            f"belongs in it; send one shape of the conf")
            continue
        if leaf not in section:
            section[leaf] = value
        elif section[leaf] != value and value != form_default(name):
            problems.append(f"{group}.{leaf}: {section[leaf]!r} disagrees with the form field {name!r} "
                            f"({value!r}); set it in one place")
    if problems:
        raise ConfigValidationError(problems)
    return out


def validate_submission(conf: Any) -> dict[str, Any]:
    """Validate a conf of either shape and return the normalized nested conf (``config.validate_conf``).

    :raises ConfigValidationError: listing every problem, each naming its field.
    """
    from isaaclab_pipeline.config import validate_conf

    return validate_conf(to_nested(conf))


def form_submission(**values: Any) -> dict[str, Any]:
    """What the trigger form sends when these fields are filled and the others left as shown (for tests, docs and
    the CLI): every Param with its form default, the given values on top, the hidden ones null."""
    unknown = sorted(set(values) - set(fields()))
    if unknown:
        raise ValueError(f"not form fields: {', '.join(unknown)}")
    out: dict[str, Any] = {name: form_default(name) for name in fields()}
    out.update(values)
    out.update({name: None for name in hidden_schemas()})
    return out


def _strip_custom_keywords(node: Any) -> Any:
    """Drop ``x-*`` keywords, which the trigger form does not understand."""
    if isinstance(node, dict):
        return {k: _strip_custom_keywords(v) for k, v in node.items() if not k.startswith("x-")}
    if isinstance(node, list):
        return [_strip_custom_keywords(v) for v in node]
    return node
