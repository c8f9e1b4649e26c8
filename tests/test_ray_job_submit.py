"""docs/ray.md's job flow end to end: start a head, ``ray job submit --working-dir`` a vq command, read
what it wrote, stop the head.

The head is bound to 127.0.0.1 with every port chosen free (so it runs beside other Ray instances on
the machine) and started as ``ray start --head --block`` in a process group of its own: stopping it
ends that group only.  ``ray stop`` would end every Ray process of this user on the machine, other
jobs' included, so the test does not call it.  The job packs two bundled photos into an image shard
set at an absolute ``--out`` (``--working-dir`` runs the command in a copy of the directory, so a
relative path would land in that copy and vanish with it).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from vq_core import Manifest
from vq_data import available_photos, verify_shards

pytestmark = pytest.mark.ray

BIN = Path(sys.executable).parent
RAY = BIN / "ray"


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


TOKEN = secrets.token_hex(32)
"""This head's auth token: Ray's token authentication stays on, with a token of the test's own (not ~/.ray's)."""


def _env() -> dict[str, str]:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=TOKEN)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # the job's shell finds the venv's vq-* scripts
    return env


@pytest.fixture
def ray_head() -> Iterator[str]:
    """A head node on 127.0.0.1 (its job server's address), stopped afterwards whatever happened."""
    if not RAY.exists():
        pytest.skip("the ray CLI is not installed (pip install 'vq-pipeline' or 'vq-tokenizers[ray]')")
    gcs, dashboard, client, agent, agent_grpc, runtime_env, metrics, node_manager = _free_ports(8)
    temp_dir = tempfile.mkdtemp(prefix="vqray")  # short: Ray's unix sockets live under it
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", "--disable-usage-stats", "--node-ip-address", "127.0.0.1",
         "--port", str(gcs), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
         "--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent),
         "--dashboard-agent-grpc-port", str(agent_grpc), "--runtime-env-agent-port", str(runtime_env),
         "--metrics-export-port", str(metrics), "--node-manager-port", str(node_manager),
         "--num-cpus", "1", "--temp-dir", temp_dir, "--include-dashboard", "true"],
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + 45
        while True:
            if head.poll() is not None:
                raise RuntimeError(f"ray start exited with {head.returncode}: {head.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                urllib.request.urlopen(f"{address}/api/version", timeout=2).close()
                break
            except urllib.error.HTTPError:  # any answer means the job server is up (401: Ray's token auth is on)
                break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"Ray's job server did not answer on {address} within 45 s")
            time.sleep(0.5)
        yield address
    finally:
        _stop(head)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _stop(head: subprocess.Popen[bytes]) -> None:
    """End the head's process group: SIGTERM (``ray start --block`` then stops what it started), SIGKILL after 8 s."""
    for sig, wait in ((signal.SIGTERM, 8), (signal.SIGKILL, 5)):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            return
        try:
            head.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        try:  # the group may outlive its leader for a moment: its workers
            os.killpg(head.pid, 0)
        except ProcessLookupError:
            return


def test_ray_job_submit_runs_a_vq_command_on_a_local_head(ray_head: str, tmp_path: Path) -> None:
    work, out = tmp_path / "work", tmp_path / "shards"  # out: absolute, outside the uploaded working dir
    work.mkdir()
    (work / "note.txt").write_text("the working dir is uploaded and the command runs inside a copy of it\n")
    submit = subprocess.run(
        [str(RAY), "job", "submit", "--address", ray_head, "--working-dir", str(work), "--", "bash", "-c",
         f"vq-data pack bundled --out {out} --image-size 8 --samples-per-shard 2 && cat note.txt"],
        env=_env(), capture_output=True, text=True, timeout=90,
    )
    assert submit.returncode == 0, submit.stdout[-3000:] + submit.stderr[-3000:]
    assert "succeeded" in submit.stdout and "the working dir is uploaded" in submit.stdout
    manifest = Manifest.load(out)  # what the job wrote, read here
    assert manifest.kind == "images" and manifest.complete
    assert manifest.num_samples == len(available_photos()) and verify_shards(out) == []
