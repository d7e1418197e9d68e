"""``citywatch run``: the platform in one process keeps its detector's learning across a
restart, drains on SIGTERM, and refuses bad flags with a clear message."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import Endpoint

from citywatch.background import BackgroundPipeline
from citywatch.local_services import free_port
from citywatch.pipeline import PipelineConfig
from simulators import MqttSink, Simulation, build_fleet, load_scenario, load_wards, run

CITYWATCH = str(Path(sys.executable).parent / "citywatch")


def play_quiet_city(broker_url: str, minutes: int) -> int:
    wards = load_wards()
    fleet = build_fleet(20, 5, wards)
    start_ms = int(time.time() * 1000) - minutes * 60_000
    sim = Simulation(
        fleet,
        load_scenario("quiet_day"),
        start_ms=start_ms,
        duration_s=minutes * 60.0,
        period_s=60.0,
        seed=5,
    )
    sink = MqttSink(broker_url, fleet)
    sink.connect()
    return run(sim, sink, speed=0, progress=False).sent


def wait_for_health(port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    pytest.fail("citywatch run did not serve /health")


def test_restart_keeps_the_detectors_baselines(
    broker: Endpoint, influx: Endpoint, tmp_path: Path
) -> None:
    config = PipelineConfig(
        broker=broker.url,
        influx=influx.url,
        database="restart",
        store_url=f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}",
        data_dir=tmp_path,
        api_port=free_port(),
        metrics_port=0,
    )
    first = BackgroundPipeline(config)
    play_quiet_city(broker.url, minutes=30)
    first.wait_idle()
    assert first.pipeline.sink is not None
    learned = first.pipeline.sink.detector.registry.size
    readings = first.pipeline.sink.readings
    first.close()
    assert learned > 0
    assert readings > 0
    assert (tmp_path / "detector.npz").exists()

    second = BackgroundPipeline(config)
    try:
        assert second.pipeline.sink is not None
        assert second.pipeline.sink.detector.registry.size == learned
    finally:
        second.close()


def test_sigterm_drains_and_checkpoints(broker: Endpoint, influx: Endpoint, tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            CITYWATCH,
            "run",
            "--broker",
            broker.url,
            "--influx",
            influx.url,
            "--database",
            "sigterm",
            "--api-port",
            str(port),
            "--metrics-port",
            "0",
            "--data-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        wait_for_health(port)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out.decode()
    assert (tmp_path / "detector.npz").exists()
    assert b"detector state saved" in out


def start_private_run(data_dir: Path) -> subprocess.Popen[bytes]:
    """``citywatch run`` with private servers, in a session of its own (so a test can
    signal its whole process group as a terminal does); returns once it serves."""
    port = free_port()
    proc = subprocess.Popen(
        [CITYWATCH, "run", "--api-port", str(port), "--metrics-port", "0", "--data-dir", data_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        start_new_session=True,
    )
    try:
        wait_for_health(port)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return proc


def servers_left(data_dir: Path) -> str:
    """Processes still running out of ``data_dir`` (the private servers), one per line."""
    found = subprocess.run(
        ["pgrep", "-af", str(data_dir)], check=False, capture_output=True, text=True
    )
    return found.stdout


def test_group_sigterm_drains_into_its_private_servers(tmp_path: Path) -> None:
    """Ctrl-C in a terminal (or ``timeout``) signals the whole process group: the
    private Mosquitto and influxd must outlive the drain, then stop with the run."""
    data_dir = tmp_path / "city"
    proc = start_private_run(data_dir)
    try:
        # As ``timeout`` does: the child, then the whole group (the child a second time).
        os.kill(proc.pid, signal.SIGTERM)
        time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "started a private Mosquitto" in text
    assert "started a private InfluxDB" in text
    assert "detector state saved" in text
    assert "setup plugin" not in text  # Alembic's chatter stays below INFO
    for symptom in ("unreachable", "not written", "reconnecting"):
        assert symptom not in text, text
    left = servers_left(data_dir)
    assert left == "", f"servers left running: {left}"


def test_a_second_ctrl_c_exits_promptly(tmp_path: Path) -> None:
    data_dir = tmp_path / "city"
    proc = start_private_run(data_dir)
    try:
        for _ in range(2):  # Ctrl-C, Ctrl-C: a terminal signals the whole group
            os.killpg(proc.pid, signal.SIGINT)
            time.sleep(0.5)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = out.decode()
    # Forced (130) if the second came during the drain; an idle city may have drained
    # already (0). Either way promptly, and without leaving its servers behind.
    assert proc.returncode in (0, 130), text
    assert ("forced stop" in text) == (proc.returncode == 130), text
    left = servers_left(data_dir)
    assert left == "", f"servers left running: {left}"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--broker", "http://127.0.0.1:1883"], "scheme must be mqtt"),
        (["--influx", "ftp://x"], "is not an http(s)://HOST:PORT URL"),
        (["--api-port", "70000"], "must be 1-65535"),
        (["--webhook-url", "http://127.0.0.1:9/hook"], "a webhook needs --webhook-secret"),
    ],
)
def test_bad_flags_are_refused_with_the_reason(flags: list[str], message: str) -> None:
    result = subprocess.run(
        [CITYWATCH, "run", *flags],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    assert result.returncode == 2
    assert message in result.stderr
