"""Export a trained policy without a simulator: the actor is rebuilt from the checkpoint and the agent config.

Isaac Lab exports a policy from inside ``play`` (a simulation, an env and the library's runner), which costs a
second Isaac Lab process after training for a network of a few kB. Everything the actor needs is in the run
folder: the weights in the checkpoint (their shapes give the observation and action sizes: the first and last
layers) and the layer sizes, activations and normalization in ``params/agent.yaml``. Each library module's
``export_policy`` rebuilds its actor with the library's own classes, loads the weights, and writes

    exported/policy.pt     TorchScript: observations [N, obs] → deterministic actions [N, act]
    exported/policy.onnx   ONNX (opset 18), input ``obs``, output ``actions``
    exported/policy.json   their sizes: ``{"inputs": [{"name": "obs", "shape": [-1, obs]}], "outputs": [...]}``

Run as ``python -m isaaclab_runner.export --rl_library L --checkpoint C --run_dir D [--output_dir O]``; the
runner calls ``export_run`` in its own process.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from isaaclab_runner.libraries import SUPPORTED, get_library
from isaaclab_runner.libraries.base import RLLibrary

AGENT_YAML = Path("params") / "agent.yaml"
EXPORT_DIR = "exported"
JIT_NAME = "policy.pt"
ONNX_NAME = "policy.onnx"
SIGNATURE_NAME = "policy.json"  # input and output sizes
ONNX_OPSET = 18  # as rsl_rl's export_policy_to_onnx


class ExportError(RuntimeError):
    """The policy could not be rebuilt from the checkpoint and the agent config."""


def load_agent_config(path: Path) -> dict[str, Any]:
    """Read an agent config Isaac Lab dumped (``params/agent.yaml``; it writes tuples as ``!!python/tuple``)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("tag:yaml.org,2002:python/tuple", lambda loader, node: loader.construct_sequence(node))
    if not path.is_file():
        raise ExportError(f"no agent config at {path} (Isaac Lab writes params/agent.yaml in the run folder)")
    data = yaml.load(path.read_text(), Loader=Loader)  # noqa: S506 - SafeLoader plus one plain-data tag
    if not isinstance(data, dict):
        raise ExportError(f"{path} does not hold an agent config")
    return data


def export_run(library: RLLibrary, run_dir: Path, checkpoint: Path, out_dir: Path | None = None) -> list[Path]:
    """Export ``checkpoint`` of the run in ``run_dir`` to ``out_dir`` (default ``run_dir/exported``).

    :raises ExportError: if the library has no exporter or the actor cannot be rebuilt.
    """
    exporter = getattr(library, "export_policy", None)
    if exporter is None:
        raise ExportError(f"{library.NAME} has no policy exporter")
    agent_cfg = load_agent_config(run_dir / AGENT_YAML)
    return exporter(checkpoint, agent_cfg, out_dir or run_dir / EXPORT_DIR)


class _ExportThread:
    """What both exports share: the export on a thread of its own, timed, its error kept for ``wait``."""

    seconds: float  # the (final) export's
    _thread: threading.Thread

    def _init_result(self) -> None:
        self.seconds = 0.0
        self._paths: list[Path] = []
        self._error: BaseException | None = None

    def wait(self, timeout: float | None = None) -> list[Path]:
        """Wait for the export; return the files written.

        :raises ExportError: if it failed (with the cause) or is still running after ``timeout`` seconds.
        """
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise ExportError(f"the export did not finish within {timeout:.0f}s")
        if isinstance(self._error, ExportError):
            raise self._error
        if self._error is not None:
            raise ExportError(f"{type(self._error).__name__}: {self._error}") from self._error
        return self._paths

    def _export(self, library: RLLibrary, run_dir: Path, checkpoint: Path, out_dir: Path | None) -> None:
        """``export_run``, timed; an error is handed to ``wait`` (an export never ends the job)."""
        started = time.monotonic()
        try:
            self._paths = export_run(library, run_dir, checkpoint, out_dir)
        except BaseException as exc:  # noqa: BLE001 - re-raised in wait(), on the runner's thread
            self._error = exc
        finally:
            self.seconds = time.monotonic() - started


class BackgroundExport(_ExportThread):
    """``export_run`` on a thread of the runner, so the run folder's upload goes on meanwhile.

    :param library: the run's RL library.
    :param run_dir: the run folder (``params/agent.yaml``).
    :param checkpoint: the checkpoint to export.
    :param out_dir: where the files go (default ``run_dir/exported``).
    """

    def __init__(self, library: RLLibrary, run_dir: Path, checkpoint: Path, out_dir: Path | None = None) -> None:
        self.library, self.run_dir, self.checkpoint = library, run_dir, checkpoint
        self.out_dir = out_dir or run_dir / EXPORT_DIR
        self._init_result()
        self._thread = threading.Thread(target=self._run, name="policy-export", daemon=True)

    def start(self) -> BackgroundExport:
        """Start exporting; returns self."""
        self._thread.start()
        return self

    def _run(self) -> None:
        self._export(self.library, self.run_dir, self.checkpoint, self.out_dir)


class EarlyExport(_ExportThread):
    """The policy export, started when training starts so that the final export takes a second, not ten or more.

    Most of an export's time on its first call in a process is not the export: importing torch and the library's
    model code, then the ONNX exporter's one-time set-up (torch.export, onnxscript's registry). This thread does that
    while Isaac Lab trains, and exports the first complete checkpoint of the run into a scratch folder (``warmups``
    times), then waits; ``finish`` hands it the final checkpoint the moment Isaac Lab exits. The warm-up writes only
    to ``scratch``: the files in ``exported/`` are those of a cold export of the final checkpoint (the same code,
    byte for byte). A failed warm-up costs nothing but the warm-up.

    :param library: the run's RL library.
    :param find_run_dir: returns the run folder once Isaac Lab made it (None before).
    :param scratch: where the warm-up exports go.
    :param warmups: how many warm-up exports (the second call of torch's ONNX exporter is still slower than the
        third).
    """

    POLL_S = 1.0  # a checkpoint unchanged over one poll is complete (as the checkpoint sync's rule)

    def __init__(self, library: RLLibrary, find_run_dir: Callable[[], Path | None], scratch: Path,
                 warmups: int = 2) -> None:
        self.library, self.find_run_dir, self.scratch, self.warmups = library, find_run_dir, scratch, warmups
        self.run_dir: Path | None = None
        self.checkpoint: Path | None = None
        self.out_dir: Path | None = None
        self._init_result()  # its seconds: the final export's, from the hand-over
        self.warmed = 0  # warm-up exports done
        self._final = threading.Event()
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name="policy-export-early", daemon=True)

    def start(self) -> EarlyExport:
        """Start the imports and the warm-up; returns self."""
        self._thread.start()
        return self

    def finish(self, run_dir: Path, checkpoint: Path, out_dir: Path | None = None) -> EarlyExport:
        """Export ``checkpoint`` (training is over): as soon as the current warm-up step ends; returns self."""
        self.run_dir, self.checkpoint = run_dir, checkpoint
        self.out_dir = out_dir or run_dir / EXPORT_DIR
        self._final.set()
        return self

    def cancel(self) -> None:
        """No export after all (training failed or was interrupted): the thread ends after its current step."""
        self._cancelled = True
        self._final.set()

    def _run(self) -> None:
        try:
            import torch  # noqa: F401 - what every exporter needs, imported while Isaac Lab trains

            self._warm_up()
        except Exception:  # a warm-up never fails the export
            pass
        self._final.wait()
        if self._cancelled or self.checkpoint is None or self.run_dir is None:
            return
        self._export(self.library, self.run_dir, self.checkpoint, self.out_dir)

    def _warm_up(self) -> None:
        from isaaclab_runner.libraries.base import latest_checkpoint

        seen: tuple[Path, int, int] | None = None
        failures = 0
        while self.warmed < self.warmups and failures < 3 and not self._final.wait(self.POLL_S):
            run_dir = self.find_run_dir()
            latest = latest_checkpoint(self.library, run_dir) if run_dir is not None else None
            if latest is None or not (run_dir / AGENT_YAML).is_file():
                continue
            st = latest.stat()
            if seen != (latest, st.st_size, st.st_mtime_ns):  # still being written, or new
                seen = (latest, st.st_size, st.st_mtime_ns)
                continue
            copy = self.scratch / "checkpoint" / latest.name  # a copy: Isaac Lab never sees this thread's reads
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(latest, copy)
            try:
                export_run(self.library, run_dir, copy, self.scratch / f"warmup-{self.warmed}")
                self.warmed += 1
            except Exception:  # a checkpoint half written after all, or a model this process cannot rebuild
                failures += 1


"""
Shared by the library exporters.
"""


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint on the CPU (the libraries save pickled dicts of state dicts)."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


def linear_sizes(state: Mapping[str, Any], prefix: str = "") -> tuple[int, int]:
    """The (input, output) sizes of a stack of layers: the first weight's columns, the last weight's rows.

    Only two-dimensional weights whose key starts with ``prefix`` count (Linear layers; an RNN's input weights
    also have the observation size as columns).
    """
    weights = [v for k, v in state.items() if k.startswith(prefix) and k.endswith("weight") and v.dim() == 2]
    if not weights:
        raise ExportError(f"no layer weights under {prefix or 'the state dict'!r}")
    return int(weights[0].shape[1]), int(weights[-1].shape[0])


def save_policy(module: Any, obs_dim: int, out_dir: Path, *, script: bool = False) -> list[Path]:
    """Write ``module`` (observations → actions, on the CPU, in eval mode) as TorchScript and ONNX.

    :param module: the deterministic actor; ``forward(obs: Tensor[N, obs_dim]) -> Tensor[N, act]``.
    :param obs_dim: the observation size.
    :param out_dir: where ``policy.pt`` and ``policy.onnx`` go.
    :param script: ``torch.jit.script`` instead of tracing (modules written for it, as rsl_rl's ``as_jit``).
    """
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    module = module.to("cpu").eval()
    example = torch.zeros(1, obs_dim)
    with torch.no_grad():
        jit = torch.jit.script(module) if script else torch.jit.trace(module, example)
        actions = int(module(example).shape[-1])
    jit.save(str(out_dir / JIT_NAME))
    save_onnx(module, example, out_dir / ONNX_NAME)
    save_signature(obs_dim, actions, out_dir)
    return [out_dir / JIT_NAME, out_dir / ONNX_NAME]


def save_signature(obs_dim: int, action_dim: int, out_dir: Path) -> Path:
    """Write ``policy.json``, the policy's input and output sizes: the registry's signature (the Airflow side has
    no torch or onnx to read them from the files)."""
    path = out_dir / SIGNATURE_NAME
    path.write_text(json.dumps({"inputs": [{"name": "obs", "shape": [-1, obs_dim]}],
                                "outputs": [{"name": "actions", "shape": [-1, action_dim]}]}))
    return path


def save_onnx(module: Any, example: Any, path: Path) -> None:
    """Export ``module`` to ONNX as rsl_rl's ``export_policy_to_onnx`` does (opset 18, ``obs`` → ``actions``), the
    weights inside the file (rsl_rl's call leaves them in a ``policy.onnx.data`` beside it)."""
    import torch

    torch.onnx.export(module, (example,), str(path), export_params=True, opset_version=ONNX_OPSET, verbose=False,
                      input_names=["obs"], output_names=["actions"], external_data=False)  # one file to deploy


def main(argv: list[str] | None = None) -> int:
    """Export one checkpoint; return 0 on success, 1 if the policy could not be exported."""
    parser = argparse.ArgumentParser(prog="isaaclab_runner.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rl_library", required=True, choices=SUPPORTED)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--run_dir", required=True, type=Path, help="the run folder (holds params/agent.yaml)")
    parser.add_argument("--output_dir", type=Path, default=None, help="default: <run_dir>/exported")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        paths = export_run(get_library(args.rl_library), args.run_dir, args.checkpoint, args.output_dir)
    except ExportError as exc:
        print(f"[export] ERROR: {exc}", file=sys.stderr)
        return 1
    print(f"[export] wrote {', '.join(map(str, paths))} in {time.monotonic() - started:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
