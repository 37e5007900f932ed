"""The three servers of the serving benchmark, each started with a given number of workers:
ours (gunicorn sync workers), `mlflow models serve -w N` (one server per model) and Seldon
MLServer (`parallel_workers` N, both models in one server), with the request each one takes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import OUT, ROOT, THREADS_ENV, free_port, lua, post_json, start, stop, wait_http

MLFLOW_VENV = ROOT / "bench" / ".mlflow-venv"
MLSERVER_VENV = ROOT / "bench" / ".mlserver-venv"
MODELS = ["bench-rf", "bench-logreg"]
SERVERS = ["ours", "mlflow", "mlserver"]
NAMES = {"ours": "ours", "mlflow": "MLflow", "mlserver": "MLServer"}
KINDS = ("one", "batch")


@dataclass
class Server:
    key: str
    workers: int
    processes: dict[str, subprocess.Popen[bytes]]  # model -> its server process (shared when one serves both)
    urls: dict[str, str]  # model -> prediction URL
    ready: list[str]  # URLs that answer 200 once every model is loaded
    scripts: dict[str, Path]  # "one" | "batch" -> wrk script
    bodies: dict[str, str]
    headers: dict[str, str]

    def pid(self, model: str) -> int:
        return self.processes[model].pid

    def wait(self) -> None:
        for url in self.ready:
            wait_http(url)

    def stop(self) -> None:
        for process in {p.pid: p for p in self.processes.values()}.values():
            stop(process)

    def labels(self, model: str, kind: str) -> list[Any]:
        """The predicted labels of one request, from whichever answer format the server uses."""
        answer = post_json(self.urls[model], self.bodies[kind], self.headers)
        if self.key == "mlserver":
            (output,) = answer["outputs"]  # `predict` only: mlserver-sklearn's default output
            return output["data"]
        return answer["predictions"]


def request_bodies(key: str, setup: dict[str, Any]) -> dict[str, str]:
    """The same rows (1, and 1,000) in each server's own request format."""
    features = setup["features"]
    bodies = {}
    for kind in KINDS:
        rows = setup[kind]
        if key == "ours":
            bodies[kind] = json.dumps({"instances": rows})
        elif key == "mlflow":
            data = [[r[f] for f in features] for r in rows]
            bodies[kind] = json.dumps({"dataframe_split": {"columns": features, "data": data}})
        else:
            bodies[kind] = json.dumps(open_inference_request(rows, features))
    return bodies


def open_inference_request(rows: list[dict[str, Any]], features: list[str]) -> dict[str, Any]:
    """Open Inference Protocol v2: one tensor per column, decoded by MLServer as a DataFrame."""
    inputs = []
    for name in features:
        column = [r[name] for r in rows]
        tensor: dict[str, Any] = {"name": name, "shape": [len(column)], "data": column}
        if all(isinstance(v, str) for v in column):
            tensor |= {"datatype": "BYTES", "parameters": {"content_type": "str"}}
        elif all(isinstance(v, int) for v in column):
            tensor["datatype"] = "INT64"
        else:
            tensor["datatype"] = "FP64"
        inputs.append(tensor)
    return {"parameters": {"content_type": "pd"}, "inputs": inputs}


def launch(key: str, workers: int, env: dict[str, str], setup: dict[str, Any]) -> Server:
    """Start one server (not yet ready: call wait())."""
    headers = {"Content-Type": "application/json"}
    if key == "ours":
        headers["Authorization"] = f"Bearer {setup['key']}"
    bodies = request_bodies(key, setup)
    scripts = {kind: lua(OUT / f"{key}-{kind}.lua", bodies[kind], headers) for kind in KINDS}
    processes, urls, ready = {"ours": _ours, "mlflow": _mlflow, "mlserver": _mlserver}[key](workers, env)
    return Server(key, workers, processes, urls, ready, scripts, bodies, headers)


def _ours(workers: int, env: dict[str, str]) -> tuple[dict, dict, list]:
    port = free_port()
    cmd = ["-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    cmd += ["--workers", str(workers), "--worker-class", "sync", "--keep-alive", "75"]
    process = start([sys.executable, *cmd], env, OUT / f"ours-w{workers}.log")
    urls = {m: f"http://127.0.0.1:{port}/api/v1/models/{m}/predict" for m in MODELS}
    return dict.fromkeys(MODELS, process), urls, [f"http://127.0.0.1:{port}/v2/health/live"]


def _mlflow(workers: int, _env: dict[str, str]) -> tuple[dict, dict, list]:
    # mlflow execs `uvicorn` by name: its virtualenv must come first on PATH
    env = {**os.environ, **THREADS_ENV, "PATH": f"{MLFLOW_VENV / 'bin'}:{os.environ['PATH']}"}
    processes, urls, ready = {}, {}, []
    for model in MODELS:
        port = free_port()
        cmd = [str(MLFLOW_VENV / "bin" / "mlflow"), "models", "serve", "-m", str(OUT / "mlflow" / model)]
        cmd += ["--env-manager", "local", "-w", str(workers), "-h", "127.0.0.1", "-p", str(port)]
        processes[model] = start(cmd, env, OUT / f"mlflow-{model}-w{workers}.log")
        urls[model] = f"http://127.0.0.1:{port}/invocations"
        ready.append(f"http://127.0.0.1:{port}/ping")
    return processes, urls, ready


def _mlserver(workers: int, _env: dict[str, str]) -> tuple[dict, dict, list]:
    """One `mlserver start` on the model repository bench/var/mlserver (both models in it); the
    worker count and ports go in its settings.json. Access logs off (`debug` false), as in
    production; its metrics server stays on, as by default."""
    repository = OUT / "mlserver"
    port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    settings = {
        "debug": False,
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "parallel_workers": workers,
        "metrics_dir": str(OUT / "mlserver-metrics"),  # by default .metrics in the working directory
    }
    (repository / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    env = {**os.environ, **THREADS_ENV, "PATH": f"{MLSERVER_VENV / 'bin'}:{os.environ['PATH']}"}
    process = start(
        [str(MLSERVER_VENV / "bin" / "mlserver"), "start", str(repository)], env, OUT / f"mlserver-w{workers}.log"
    )
    urls = {m: f"http://127.0.0.1:{port}/v2/models/{m}/infer" for m in MODELS}
    return dict.fromkeys(MODELS, process), urls, [f"http://127.0.0.1:{port}/v2/models/{m}/ready" for m in MODELS]
