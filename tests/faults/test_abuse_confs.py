"""Abuse: generated confs (valid, near-valid, junk JSON of every type) through validate_config and resolve_inputs.

Each conf is either refused at ``validate_conf`` with every problem named by field (and only
``ConfigValidationError``), or it goes on through ``apply_deployment`` and ``build_job_spec`` (``ResolveError``
allowed, naming its field) to a JobSpec; every JobSpec is then handed to the task runner's own code in the Isaac Lab
venv (``jobspec.load_spec`` and ``isaaclab_cli.train_command``/``policy_command``), which must accept it and build
an argv whose numbers parse as integers and whose strings hold no control character.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from isaaclab_pipeline.config import ConfigValidationError, apply_deployment, validate_conf
from isaaclab_pipeline.resolve import ResolveError, build_job_spec
from isaaclab_pipeline.settings import PipelineSettings
from pipeline_env import ISAACLAB_PYTHON

REPO = Path(__file__).resolve().parents[2]
JOB = "0b6d2c1e-7d7e-5b5c-9f6e-1f2a3b4c5d6e"
_SEG = r"(?:[A-Za-z0-9_-]+|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
FIELD = re.compile(rf"^(?:\(conf\)|{_SEG}(?:\.{_SEG})*): \S")
# no example database: nothing is written into the checkout; CI draws fresh examples every run
SETTINGS = settings(max_examples=250, deadline=None, database=None, suppress_health_check=list(HealthCheck))

# A sandbox for every path a generated conf may name: nothing outside it is ever listed or written.
SANDBOX = Path(tempfile.mkdtemp(prefix="isaaclab-abuse-"))
ASSET = SANDBOX / "assets" / "env"
(ASSET / "runs").mkdir(parents=True)
(ASSET / "env.tar.gz").write_bytes(b"not really an archive; resolve only lists it")
(ASSET / "runs" / "model_10.pt").write_bytes(b"ckpt")
OUT = SANDBOX / "outputs"


def _json(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value: null, booleans, integers, floats (NaN and infinities too), strings, arrays, objects."""
    scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats()
               | st.text(max_size=40) | st.sampled_from(["", "\n", "\x00", "..", "/", "s3://", "file:///"]))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=max_leaves)


TASKS = ["Isaac-Cartpole-v0", "Isaac-Ant-v0", "Isaac-Custom-Cartpole-Direct", "IsaacContrib-Lift-Cube-Franka"]
good = {
    "mode": st.sampled_from(["train", "evaluate", "play"]),
    "task": st.sampled_from(TASKS) | st.from_regex(r"\A[A-Za-z][A-Za-z0-9_.:-]{0,40}\Z"),
    "rlLibrary": st.sampled_from(["rsl_rl", "skrl", "rl_games"]),
    "seed": st.none() | st.integers(0, 4294967295),
    "numEnvs": st.integers(1, 65536),
    "maxIterations": st.integers(1, 100000),
    "numEpisodes": st.integers(1, 10000),
    "recordVideo": st.booleans(),
}
bad = {
    "mode": st.text(max_size=10) | _json(3),
    "task": st.sampled_from(["Isaac-Ant-v0\n", "Isaac-Ant\r", "-rf", "a b", "$(id)", "Isaac\x00", "x" * 200])
    | _json(3),
    "rlLibrary": st.text(max_size=10) | _json(3),
    "seed": st.floats() | st.integers(-2**40, -1) | st.integers(2**32, 2**64) | _json(3),
    "numEnvs": st.floats(-1e9, 1e9) | st.integers(-100, 0) | st.integers(65537, 2**64) | st.just(64.0) | _json(3),
    "maxIterations": st.just(4096.0) | st.integers(-5, 0) | _json(3),
    "numEpisodes": st.just(10.0) | st.booleans() | _json(3),
    "recordVideo": st.integers() | st.text(max_size=5) | _json(3),
    "checkpointPath": st.sampled_from(["../x.pt", "/etc/passwd", "ok.pt\n../../etc", "a/../../b", "runs\\..\\x",
                                       "runs/model_10.pt", "missing.pt"]) | _json(3),
    "policyS3Uri": st.sampled_from(["s3:///x", "s3://B/x", "s3://ok-bucket/m.pt", "file:///etc/shadow",
                                    f"file://{ASSET}/runs/model_10.pt", "http://x/y"]) | _json(3),
    "resumeCheckpoint": st.sampled_from(["runs/model_10.pt", "../../x", "s3://ok-bucket/../x"]) | _json(3),
}
uris = {
    "outputS3Path": st.sampled_from([str(OUT), f"file://{OUT}", f"file://localhost{OUT}", "s3:///x", "s3://b/../x",
                                     f"{OUT}/../../escape", "/opt/airflow/dags\n", "relative/out", "s3://ok-bucket/o",
                                     "file://otherhost/x"]) | _json(2),
    "inputS3AssetFilePath": st.sampled_from([str(ASSET), f"file://{ASSET}/", f"{ASSET}/env.tar.gz", f"{SANDBOX}/none",
                                             "s3://ok-bucket/env.tar.gz", f"file://{SANDBOX}/etc/", "s3://",
                                             f"{ASSET}/\x00"]) | _json(2),
}


@st.composite
def valid_confs(draw: st.DrawFn) -> dict[str, Any]:
    tc = {k: draw(v) for k, v in good.items() if draw(st.booleans())}
    conf: dict[str, Any] = {"trainingConfig": tc, "outputS3Path": draw(st.sampled_from([str(OUT), f"file://{OUT}"]))}
    if tc.get("mode") in ("evaluate", "play") or draw(st.booleans()):
        conf["inputS3AssetFilePath"] = draw(st.sampled_from([str(ASSET), f"file://{ASSET}/"]))
    if tc.get("mode") in ("evaluate", "play"):
        tc["checkpointPath"] = "runs/model_10.pt"
    if draw(st.booleans()):
        conf["computeConfig"] = {"numNodes": 1}
    if draw(st.booleans()):
        conf = {"workflowName": "isaac-lab-training", "parameters": conf}
    return conf


@st.composite
def near_valid_confs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid conf with one to three fields replaced by a wrong value, an unknown key or a junk section."""
    conf = draw(valid_confs())
    inner = conf.get("parameters", conf)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["training", "uri", "unknown", "section"]))
        if kind == "training":
            key = draw(st.sampled_from(sorted(bad)))
            if isinstance(inner.get("trainingConfig"), dict):
                inner["trainingConfig"][key] = draw(bad[key])
        elif kind == "uri":
            key = draw(st.sampled_from(sorted(uris)))
            inner[key] = draw(uris[key])
        elif kind == "unknown":
            section = "trainingConfig" if draw(st.booleans()) else "computeConfig"
            current = inner.get(section)
            inner[section] = {**(current if isinstance(current, dict) else {}),
                              draw(st.text(min_size=1, max_size=12)): draw(_json(2))}
        else:
            inner[draw(st.sampled_from(["trainingConfig", "computeConfig", "vams", "workflowName"]))] = draw(_json(4))
    return conf


@pytest.fixture(autouse=True)
def _no_task_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISAACLAB_KNOWN_TASKS", str(SANDBOX / "no-task-list.json"))


def _check(raw: Any, specs: list[dict[str, Any]], outcomes: dict[str, int]) -> None:
    """The contract: ConfigValidationError naming fields, or a JobSpec (ResolveError naming its field allowed)."""
    try:
        conf = validate_conf(raw)
    except ConfigValidationError as exc:
        assert exc.problems, raw
        for problem in exc.problems:
            assert FIELD.match(problem), (problem, raw)
            assert "could not be validated" not in problem, (problem, raw)  # the safety net caught a bug of ours
        outcomes["refused"] += 1
        return
    local = PipelineSettings(compute_backend="local", staging_uri=str(SANDBOX / "staging"),
                             allowed_uri_prefixes=("s3://allowed-only/",))  # never reach AWS: no s3 URI passes
    try:
        conf = apply_deployment(conf, default_output_uri=str(OUT), max_nodes=local.max_nodes)
        spec = build_job_spec(conf, JOB, local).to_dict()
    except ConfigValidationError as exc:
        assert all(FIELD.match(p) for p in exc.problems), exc.problems
        outcomes["refused"] += 1
        return
    except ResolveError as exc:
        assert FIELD.match(str(exc)) or str(exc).startswith("the conf names locations"), str(exc)
        outcomes["resolve"] += 1
        return
    specs.append(spec)
    outcomes["spec"] += 1


def _run_runner_side(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hand every spec to the runner's own code in the Isaac Lab venv; return its verdicts."""
    script = r'''
import json, sys
from pathlib import Path
from isaaclab_runner import isaaclab_cli
from isaaclab_runner.jobspec import load_spec
from isaaclab_runner.libraries import get_library
out = []
for text in json.load(sys.stdin):
    try:
        spec = load_spec(text)
        lib = get_library(spec["rlLibrary"])
        if spec["mode"] == "train":
            argv = isaaclab_cli.train_command(spec, lib, "cpu")
        else:
            argv = isaaclab_cli.policy_command(spec, lib, "cpu", Path("/ckpt/model_10.pt"), Path("/out"),
                                               num_episodes=spec["numEpisodes"])
        out.append({"ok": True, "argv": argv})
    except Exception as exc:
        out.append({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
print(json.dumps(out))
'''
    proc = subprocess.run([str(ISAACLAB_PYTHON), "-c", script], input=json.dumps([json.dumps(s) for s in specs]),
                          capture_output=True, text=True, timeout=300, cwd=REPO / "task_image")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _assert_runner_accepts(specs: list[dict[str, Any]]) -> None:
    if not ISAACLAB_PYTHON.exists():
        pytest.skip("needs the Isaac Lab venv for the runner's side")
    verdicts = _run_runner_side(specs)
    assert len(verdicts) == len(specs)
    for spec, verdict in zip(specs, verdicts, strict=True):
        assert verdict["ok"], (verdict, spec)
        argv = verdict["argv"]
        assert all(isinstance(a, str) and not re.search(r"[\x00-\x1f\x7f]", a) for a in argv), argv
        for flag in ("--num_envs", "--max_iterations", "--seed", "--num_episodes"):
            if flag in argv:
                value = argv[argv.index(flag) + 1]
                assert re.fullmatch(r"\d+", value), (flag, value, spec)
        assert argv[argv.index("--task") + 1] == spec["task"]
        assert argv[argv.index("--num_envs") + 1] == str(spec["numEnvs"])


@pytest.mark.isaaclab
def test_valid_confs_become_job_specs_the_runner_accepts() -> None:
    specs: list[dict[str, Any]] = []
    outcomes = {"refused": 0, "resolve": 0, "spec": 0}

    @SETTINGS
    @given(valid_confs())
    def run(raw: dict[str, Any]) -> None:
        _check(raw, specs, outcomes)

    run()
    print(f"valid: {outcomes}")
    assert outcomes["refused"] == 0, outcomes  # valid means valid
    assert outcomes["spec"] >= 100, outcomes
    _assert_runner_accepts(specs)


@pytest.mark.isaaclab
def test_near_valid_confs_are_refused_by_field_or_accepted_by_the_runner() -> None:
    specs: list[dict[str, Any]] = []
    outcomes = {"refused": 0, "resolve": 0, "spec": 0}

    @settings(SETTINGS, max_examples=600)
    @given(near_valid_confs())
    def run(raw: dict[str, Any]) -> None:
        _check(raw, specs, outcomes)

    run()
    print(f"near-valid: {outcomes}, runner accepted {len(specs)} specs")
    assert outcomes["refused"] > 100, outcomes
    _assert_runner_accepts(specs)


def test_junk_json_of_every_type_is_refused_by_field() -> None:
    outcomes = {"refused": 0, "resolve": 0, "spec": 0}

    @settings(SETTINGS, max_examples=800)
    @given(_json(20) | st.dictionaries(st.sampled_from(["trainingConfig", "computeConfig", "outputS3Path", "vams",
                                                        "inputS3AssetFilePath", "workflowName", "parameters"]),
                                       _json(8), max_size=5))
    def run(raw: Any) -> None:
        _check(raw, [], outcomes)

    run()
    print(f"junk: {outcomes}")
    assert outcomes["refused"] > 400, outcomes


@pytest.mark.parametrize("asset", ["/", "file:///"])
def test_an_asset_naming_the_whole_disk_is_refused_quickly(asset: str) -> None:
    """Found by the generator: on the local backend ``inputS3AssetFilePath: "/"`` walked the whole disk."""
    import time

    conf = validate_conf({"trainingConfig": {"task": "T"}, "inputS3AssetFilePath": asset, "outputS3Path": str(OUT)})
    started = time.monotonic()
    with pytest.raises(ResolveError, match="inputS3AssetFilePath: .* holds more than 20000 files"):
        build_job_spec(conf, JOB, PipelineSettings(staging_uri=str(SANDBOX / "staging")))
    assert time.monotonic() - started < 120


def test_nothing_outside_the_sandbox_was_written() -> None:
    """Every path a generated conf named stayed inside the sandbox (the write probe cleans up after itself)."""
    leftovers = [p for p in OUT.rglob("*") if p.is_file()] if OUT.exists() else []
    assert leftovers == []
    assert not Path("/opt/airflow/dags").exists() or not any(Path("/opt/airflow/dags").iterdir())
