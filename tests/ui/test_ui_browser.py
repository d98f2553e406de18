"""The Airflow UI as the robotics engineer uses it, in a real browser (Playwright driving the machine's chromium)
against a real ``airflow api-server`` with the DAG and the runs-view plugin, behind Airflow's login.

1. Log in, open the DAG's trigger form, fill its typed fields, trigger: the run exists with exactly the form's
   conf, which normalizes to the same conf as the nested one the REST API and VAMS send; the runs view (inside the
   Airflow UI, as its plugin page) lists the run with its mode, task and library.
2. The runs view shows a finished run's reward, curve, cost and links (the published summary.json served through
   the view, the Batch job, its CloudWatch log), and a running run's progress changing as its progress.json does.
3. The view's data and files answer only behind Airflow's auth, and only for files the run published.

``ISAACLAB_UI_SCREENSHOTS=docs/img`` saves the screenshots docs/ui.md shows.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import urllib.request
from pathlib import Path

import pytest
from isaaclab_pipeline import form
from ui_server import DAG_ID, PASSWORD, USER, Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is installed by requirements-dev.txt")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (the Makefile's test set-up installs it)")

TASK = "Isaac-Custom-Cartpole-Direct"
STEPS = ("validate_config", "resolve_inputs", "submit_job", "wait_for_job", "convert_tensorboard_logs",
         "publish_outputs")


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser, server: Server):
    """A logged-in page (Airflow's own login form)."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{server.url}/")
    page.locator("input[name=username]").fill(USER)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)
    yield page
    context.close()


def screenshot(page, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("ISAACLAB_UI_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name))


def newest_run(server: Server) -> dict:
    status, body = server.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?order_by=-run_after&limit=1")
    assert status == 200, body
    return body["dag_runs"][0]


def test_trigger_form_creates_the_run_and_the_runs_view_lists_it(page, server: Server, tmp_path: Path) -> None:
    out = str(server.home / "pipeline" / "outputs")
    page.goto(f"{server.url}/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger").click()
    dialog = page.get_by_role("dialog")

    def section(name: str) -> None:
        toggle = dialog.get_by_role("button", name=name, exact=True)
        if toggle.get_attribute("aria-expanded") != "true":
            toggle.click()

    # every internal field is a hidden input, never a visible editor
    for name in ("trainingConfig", "computeConfig", "vams", "workflowName", "parameters"):
        assert dialog.locator(f"#element_{name}").get_attribute("type") == "hidden"
    section("Run")
    assert "train: learn a policy" in dialog.locator("#element_mode").inner_text()  # the guide's default
    dialog.locator("#element_task").fill(TASK)
    assert TASK in dialog.locator("datalist#list_task").inner_html()  # suggestions: the schema's, the image's
    assert "Isaac-Ant" in dialog.locator("datalist#list_task").inner_html()
    dialog.locator("#element_rlLibrary").click()
    page.get_by_role("option", name="skrl", exact=True).click()
    dialog.locator("input[name=element_seed]").fill("42")
    dialog.locator("input[name=element_recordVideo]").locator("xpath=..").click()  # the switch's control
    screenshot(page, "trigger-form.png", tmp_path)
    section("Scale")
    assert dialog.locator("input[name=element_numEnvs]").get_attribute("aria-valuemax") == "65536"
    dialog.locator("input[name=element_numEnvs]").fill("64")
    dialog.locator("input[name=element_maxIterations]").fill("150")
    section("Asset and outputs")
    dialog.locator("#element_outputS3Path").fill(out)
    dialog.locator("button", has_text="Trigger").last.click()
    page.get_by_text("Dag run has been successfully triggered").first.wait_for()

    run = newest_run(server)
    assert run["state"] == "queued"
    filled = {"task": TASK, "rlLibrary": "skrl", "seed": 42, "recordVideo": True, "numEnvs": 64,
              "maxIterations": 150, "outputS3Path": out}
    assert run["conf"] == form.form_submission(**filled)  # typed values, defaults for the rest, hidden ones null
    nested = {"trainingConfig": {"task": TASK, "rlLibrary": "skrl", "seed": 42, "recordVideo": True, "numEnvs": 64,
                                 "maxIterations": 150}, "outputS3Path": out}
    assert form.validate_submission(run["conf"]) == form.validate_submission(nested)

    # the runs view, inside the Airflow UI (its navigation entry opens the plugin page)
    page.goto(f"{server.url}/")
    page.get_by_role("link", name="Isaac Lab runs").first.click()
    frame = page.frame_locator("iframe[title='Isaac Lab runs']")
    row = frame.locator(f"tr.run[data-run-id='{run['dag_run_id']}']")
    row.wait_for()
    assert row.locator(".state").inner_text() == "queued"
    assert (row.locator(".mode").inner_text(), row.locator(".library").inner_text()) == ("train", "skrl")
    assert row.locator(".task").inner_text().startswith(TASK)
    assert "64 envs" in row.locator(".task").inner_text()


def write_finished_outputs(root: Path, job: str) -> Path:
    """What convert and publish leave for a 150-iteration training run (local backend)."""
    out = root / "outputs" / job
    out.mkdir(parents=True)
    rewards = [round(135 * (1 - math.exp(-i / 35)) - 6 + 2 * math.sin(i / 3), 3) for i in range(150)]
    lines = ["step,wall_time,Train/mean_episode_length,Train/mean_reward"]
    lines += [f"{i},{1_796_000_000 + i},{10 + i / 2},{r}" for i, r in enumerate(rewards)]
    (out / "metrics.csv").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps({
        "tags": {"Train/mean_reward": {"last": rewards[-1], "min": min(rewards), "max": max(rewards),
                                       "count": 150, "last_step": 149}},
        "best_mean_reward": {"value": max(rewards), "step": rewards.index(max(rewards))}, "steps": 150,
        "scalars": 300}))
    (out / "cost.json").write_text(json.dumps({"backend": "local", "wallSeconds": 412.5, "attempts": 1,
                                               "gpuSeconds": None, "estimatedCostUsd": None, "live": False,
                                               "notes": ["local backend: wall time only"]}))
    (out / "reward_curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (out / "manifest.json").write_text(json.dumps({"jobId": job, "files": [
        {"path": n, "size": (out / n).stat().st_size, "sha256": "-"}
        for n in ("cost.json", "metrics.csv", "reward_curve.png", "summary.json")]}))
    return out


def normalized(task: str, library: str, out: Path) -> dict:
    return {"trainingConfig": {"mode": "train", "task": task, "rlLibrary": library, "seed": 42, "numEnvs": 64,
                               "maxIterations": 150, "numEpisodes": 50, "recordVideo": False},
            "computeConfig": {"numNodes": 1}, "outputS3Path": str(out)}


def test_runs_view_shows_progress_result_cost_and_links(page, server: Server, tmp_path: Path) -> None:
    root = server.home / "pipeline"
    done, live = "1f0e0d0c-0b0a-5908-8706-050403020100", "2f0e0d0c-0b0a-5908-8706-050403020100"
    out = write_finished_outputs(root, done)
    handle = {"backend": "local", "jobId": done, "externalId": str(root / "jobs" / done), "details": {},
              "stagingUri": str(root / "staging" / done)}
    server.seed_run("ui-finished", {"trainingConfig": {"task": TASK, "numEnvs": 64, "maxIterations": 150,
                                                       "seed": 42}}, "success", dict.fromkeys(STEPS, "success"), [
        {"task": "validate_config", "key": "return_value", "value": {"jobId": done,
                                                                     "conf": normalized(TASK, "rsl_rl", out.parent)}},
        {"task": "submit_job", "key": "return_value", "value": handle},
        {"task": "wait_for_job", "key": "isaaclab_batch_job",
         "value": {"region_name": "us-east-1", "aws_domain": "aws.amazon.com", "job_id": "5a6b7c8d-1111"}},
        {"task": "wait_for_job", "key": "isaaclab_job_log",
         "value": {"region_name": "us-east-1", "aws_domain": "aws.amazon.com", "awslogs_group": "/aws/batch/job",
                   "awslogs_stream_name": "isaaclab-train/default/0a9b8c7d", "awslogs_region": "us-east-1"}},
        {"task": "publish_outputs", "key": "return_value", "value": {"outputUri": str(out), "files": 5,
                                                                     "refusedKeys": 0, "jobId": done}},
    ], started_s_ago=500)
    staging = root / "staging" / live
    staging.mkdir(parents=True)
    progress = {"jobId": live, "state": "training", "mode": "train", "iteration": 10, "maxIterations": 150,
                "meanReward": 1.5}
    (staging / "progress.json").write_text(json.dumps(progress))
    (root / "jobs" / live).mkdir(parents=True)
    (root / "jobs" / live / "pid").write_text("1")  # the local job started (its wall time counts from here)
    server.seed_run("ui-running", {"trainingConfig": {"task": "Isaac-Ant-v0", "rlLibrary": "rl_games"}}, "running",
                    {"validate_config": "success", "resolve_inputs": "success", "submit_job": "success",
                     "wait_for_job": "deferred"}, [
        {"task": "validate_config", "key": "return_value", "value": {"jobId": live,
                                                                     "conf": normalized("Isaac-Ant-v0", "rl_games",
                                                                                        root / "outputs")}},
        {"task": "submit_job", "key": "return_value", "value": {
            "backend": "local", "job_id": live, "external_id": str(root / "jobs" / live), "details": {},
            "staging_uri": str(staging)}},
    ], started_s_ago=120)

    page.goto(f"{server.url}/plugin/isaaclab-runs")
    frame = page.frame_locator("iframe[title='Isaac Lab runs']")
    finished = frame.locator("tr.run[data-run-id='ui-finished']")
    finished.wait_for()
    # a finished run: its reward, whole curve, wall time, and links to its outputs, Batch job and log
    assert finished.locator(".state").inner_text() == "success"
    assert finished.locator(".steps span[data-state='success']").count() == len(STEPS)
    last = json.loads((out / "summary.json").read_text())["tags"]["Train/mean_reward"]["last"]
    assert finished.locator(".result .reward").inner_text() == f"mean reward {last:.2f}"
    assert finished.locator("svg.curve").get_attribute("data-points") == "150"
    assert "wall 6m 53s (local)" in finished.locator(".cost").inner_text()
    assert finished.locator(".duration").inner_text() == "8m 20s"
    summary_link = finished.locator("a.link-file[data-name='summary.json']")
    response = page.request.get(server.url + summary_link.get_attribute("href"))  # with the page's session
    assert response.status == 200 and response.json()["steps"] == 150
    assert finished.locator("a.link-batch").get_attribute("href") == (
        "https://console.aws.amazon.com/batch/home?region=us-east-1#jobs/detail/5a6b7c8d-1111")
    assert "cloudwatch" in finished.locator("a.link-logs").get_attribute("href")

    # a running run: its progress, growing while progress.json changes
    running = frame.locator("tr.run[data-run-id='ui-running']")
    assert (running.locator(".task").inner_text().split("\n")[0], running.locator(".library").inner_text()) == (
        "Isaac-Ant-v0", "rl_games")
    assert running.locator(".progress .iteration").inner_text() == "it 10/150"
    assert running.locator(".progress .reward").inner_text() == "mean reward 1.50"
    assert running.locator("svg.curve").get_attribute("data-points") == "1"
    (staging / "progress.json").write_text(json.dumps({**progress, "iteration": 20, "meanReward": 3.25,
                                                       "updatedAt": time.time()}))
    playwright.expect(running.locator(".progress .iteration")).to_have_text("it 20/150", timeout=20_000)
    playwright.expect(running.locator(".progress .reward")).to_have_text("mean reward 3.25")
    playwright.expect(running.locator("svg.curve")).to_have_attribute("data-points", "2")
    assert "(local)" in running.locator(".cost").inner_text()  # its wall time so far
    screenshot(page, "runs-view.png", tmp_path)

    # the same view on the run's own page (the dag_run external view)
    page.goto(f"{server.url}/dags/{DAG_ID}/runs/ui-finished")
    page.get_by_text("Isaac Lab run", exact=True).click()
    only = page.frame_locator("iframe[title='Isaac Lab run']").locator("tr.run")
    playwright.expect(only).to_have_count(1)
    assert only.get_attribute("data-run-id") == "ui-finished"


def test_runs_view_answers_only_behind_airflow_auth(server: Server) -> None:
    def status(path: str, token: str | None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            with urllib.request.urlopen(urllib.request.Request(server.url + path, headers=headers), timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert status("/isaaclab/api/runs", None) == 401
    assert status("/isaaclab/runs", None) == 401
    assert status("/isaaclab/api/runs", "not-a-jwt") in (401, 403)
    token = server.token()
    assert status("/isaaclab/api/runs", token) == 200
    assert status("/isaaclab/icon.svg", None) == 200  # the navigation's icon carries no data
    # files: only what a run's manifest lists
    assert status("/isaaclab/api/runs/ui-finished/trials/0/files/summary.json", None) == 401
    for name in ("..%2F..%2Fetc%2Fpasswd", "spec.json", "../manifest.json"):
        found = status(f"/isaaclab/api/runs/ui-finished/trials/0/files/{name}", token)
        assert found == 404, name
