"""Ingest capacity as a backlog drain (issue 3).

Run by hand: ``.venv/bin/python benchmarks/ingest_drain.py``.

With every subscriber stopped (persistent sessions kept), 100,000 QoS 1 reports of 5,000
cabinets are queued in a private Mosquitto; then each contender is started alone and
timed until its work is done, the same way:

(a) raw broker pipe: a plain paho subscriber that only counts (done = all received);
(b) naive tutorial ingest: paho + json + one HTTP write per message (done = points
    queryable); capped: timed on its first 5,000 messages and extrapolated;
(c) simple batcher: paho, line-protocol strings, one POST per 5,000 lines or 1 s;
(ours) ``ingest.IngestService``: decode + validation + dedupe + liveness + gzip batches +
    manual acks after the durable write.

Done for (b), (c) and ours means ``count(temp_inside)`` in the contender's own database
equals the messages it took (polled every 0.1 s). Prints rates, ratios, peak memory (RSS
growth of this process during the run, sampled every 20 ms).
"""

import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from anomaly import Detector
from citywatch.local_services import LocalInfluxd, LocalMosquitto
from citywatch.pipeline import DataClock, DetectorSink
from ingest import IngestService, load_settings
from ingest.batch import PendingBatch
from telemetry import SUBSCRIPTION, Channel, DeviceKind, Report, Topic, encode

N_MESSAGES = 100_000
N_DEVICES = 5_000
NAIVE_CAP = 5_000
CLIENTS = {
    "a": "bench-raw",
    "b": "bench-naive",
    "c": "bench-batcher",
    "ours": "bench-ingest",
    "ours+detector": "bench-ingest-detector",
}


def make_messages() -> list[tuple[str, bytes]]:
    now_ms = time.time_ns() // 1_000_000 - 3_600_000
    out = []
    for i in range(N_MESSAGES):
        device = f"cab-{i % N_DEVICES:05d}"
        n = i // N_DEVICES
        report = Report(
            v=1,
            device=device,
            kind=DeviceKind.CABINET,
            ts=now_ms + n * 60_000 + (i % N_DEVICES),
            seq=n,
            metrics={
                "temp_inside": 30.0 + (i % 17) * 0.5,
                "temp_outside": 28.0 + (i % 11) * 0.3,
                "humidity": 60.0 + i % 30,
                "door_open": i % 97 == 0,
                "mains_voltage": 229.0 + (i % 7),
                "on_battery": False,
                "battery_soc": 100.0,
                "battery_voltage": 54.2,
                "fan_rpm": 2200.0 + i % 300,
                "water_level": 0.0,
                "power_draw": 850.0 + i % 200,
            },
        )
        ward = f"phuong_{i % 30:02d}"
        out.append(
            (Topic(ward, DeviceKind.CABINET, device, Channel.TELEMETRY).format(), encode(report))
        )
    return out


def _session_client(client_id: str, port: int, *, manual_ack: bool = False) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    return client


def create_sessions(port: int) -> None:
    for client_id in CLIENTS.values():
        client = _session_client(client_id, port)
        done = threading.Event()
        client.on_subscribe = lambda *_, done=done: done.set()
        client.loop_start()
        client.subscribe(SUBSCRIPTION, qos=1)
        assert done.wait(10)
        client.disconnect()
        client.loop_stop()


def publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(2000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for start in range(0, len(messages), 20_000):  # packet ids wrap at 65,535
        infos = [client.publish(t, p, qos=1) for t, p in messages[start : start + 20_000]]
        for info in infos:
            info.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()


class PeakRss:
    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return (self.peak - self.base) / 2**20


_POLL = httpx.Client()
"""One client for every poll: ``httpx.get`` builds a client (and an SSL context) per call,
which costs ~15 ms of CPU under the GIL the contender runs on, 10 times a second."""


def count(influx_url: str, db: str) -> int:
    r = _POLL.get(
        f"{influx_url}/query", params={"db": db, "q": "SELECT count(temp_inside) FROM cabinet"}
    )
    series = r.json()["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def wait_points(influx_url: str, db: str, n: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while count(influx_url, db) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{db}: only {count(influx_url, db)} of {n} points")
        time.sleep(0.1)


def run_raw(port: int) -> float:
    got = 0
    done = threading.Event()

    def on_message(*_: object) -> None:
        nonlocal got
        got += 1
        if got >= N_MESSAGES:
            done.set()

    client = _session_client(CLIENTS["a"], port)
    client.on_message = on_message
    start = time.perf_counter()
    client.loop_start()
    done.wait(600)
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return elapsed


def _line(topic: str, payload: bytes) -> str:
    doc = json.loads(payload)
    ward = topic.split("/")[2]
    fields = ",".join(
        f"{k}={'true' if v is True else 'false' if v is False else v}"
        for k, v in doc["metrics"].items()
    )
    return f"{doc['kind']},device={doc['device']},ward={ward} {fields} {doc['ts']}"


def run_naive(port: int, influx_url: str) -> float:
    db = "bench_b"
    httpx.post(f"{influx_url}/query", params={"q": f"CREATE DATABASE {db}"})
    http = httpx.Client()
    got = 0
    done = threading.Event()

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal got
        if got >= NAIVE_CAP:
            return
        http.post(
            f"{influx_url}/write",
            params={"db": db, "precision": "ms"},
            content=_line(msg.topic, msg.payload),
        )
        got += 1
        if got >= NAIVE_CAP:
            done.set()

    client = _session_client(CLIENTS["b"], port)
    client.on_message = on_message
    start = time.perf_counter()
    client.loop_start()
    done.wait(600)
    wait_points(influx_url, db, NAIVE_CAP)
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return elapsed


def run_batcher(port: int, influx_url: str) -> float:
    db = "bench_c"
    httpx.post(f"{influx_url}/query", params={"q": f"CREATE DATABASE {db}"})
    http = httpx.Client()
    lines: list[str] = []
    last = time.monotonic()
    lock = threading.Lock()

    def flush() -> None:
        nonlocal lines, last
        if lines:
            body, lines = "\n".join(lines), []
            http.post(f"{influx_url}/write", params={"db": db, "precision": "ms"}, content=body)
        last = time.monotonic()

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with lock:
            lines.append(_line(msg.topic, msg.payload))
            if len(lines) >= 5000 or time.monotonic() - last >= 1.0:
                flush()

    stop = threading.Event()

    def ticker() -> None:
        while not stop.wait(0.2):
            with lock:
                if time.monotonic() - last >= 1.0:
                    flush()

    client = _session_client(CLIENTS["c"], port)
    client.on_message = on_message
    start = time.perf_counter()
    threading.Thread(target=ticker, daemon=True).start()
    client.loop_start()
    wait_points(influx_url, db, N_MESSAGES)
    elapsed = time.perf_counter() - start
    stop.set()
    client.disconnect()
    client.loop_stop()
    return elapsed


def run_ours(
    broker: LocalMosquitto, influx_url: str, spool: Path, *, detector: bool = False
) -> tuple[float, IngestService]:
    """Our ingest; with ``detector`` the live pipeline's detector sink scores every batch."""
    db = "bench_ours_detector" if detector else "bench_ours"
    settings = load_settings(
        broker=broker.url,
        influx=influx_url,
        database=db,
        spool_dir=spool,
        client_id=CLIENTS["ours+detector" if detector else "ours"],
        metrics_port=0,
        self_metrics_interval_s=60.0,
    )
    sinks = []
    if detector:
        sinks.append(DetectorSink(Detector(), DataClock(), emit=lambda _events: None))
    service = IngestService(settings, sinks=sinks)
    for sink in sinks:
        sink.write = lambda lines: service.writer.submit(PendingBatch(lines=lines))
    service.influx.create_database()
    start = time.perf_counter()
    service.start()
    wait_points(influx_url, db, N_MESSAGES)
    elapsed = time.perf_counter() - start
    service.stop()
    return elapsed, service


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, LocalMosquitto() as broker, LocalInfluxd() as influx:
        print(f"generating {N_MESSAGES:,} reports of {N_DEVICES:,} cabinets (11 metrics each)")
        messages = make_messages()
        create_sessions(broker.port)
        t0 = time.perf_counter()
        publish(broker.port, messages)
        print(f"queued for {len(CLIENTS)} stopped sessions in {time.perf_counter() - t0:.1f} s")
        del messages

        results: dict[str, tuple[float, float]] = {}

        def timed(name: str, run: Callable[[], float], n: int) -> None:
            rss = PeakRss()
            elapsed = run()
            results[name] = (n / elapsed, rss.stop())
            print(
                f"  {name:>13}: {n:>7,} msgs in {elapsed:6.2f} s = {n / elapsed:9,.0f} msg/s, "
                f"peak RSS +{results[name][1]:.0f} MiB"
            )

        timed("a", lambda: run_raw(broker.port), N_MESSAGES)
        timed("b", lambda: run_naive(broker.port, influx.url), NAIVE_CAP)
        timed("c", lambda: run_batcher(broker.port, influx.url), N_MESSAGES)
        service: list[IngestService] = []

        def ours() -> float:
            elapsed, svc = run_ours(broker, influx.url, Path(tmp) / "spool")
            service.append(svc)
            return elapsed

        timed("ours", ours, N_MESSAGES)

        def ours_detector() -> float:
            elapsed, svc = run_ours(broker, influx.url, Path(tmp) / "spool2", detector=True)
            service.append(svc)
            return elapsed

        timed("ours+detector", ours_detector, N_MESSAGES)
        det_lost = N_MESSAGES - count(influx.url, "bench_ours_detector")
        stats = service[0].stats
        lost = N_MESSAGES - count(influx.url, "bench_ours")
        rate = results["ours"][0]
        print(
            f"ours: {rate:,.0f} msg/s; loss {lost}; rejected {sum(stats.rejected.values())}; "
            f"spooled {stats.points_spooled}; acked {stats.acked:,}; peak RSS +{results['ours'][1]:.0f} MiB"  # noqa: E501
        )
        print(
            f"(b) extrapolated from its first {NAIVE_CAP:,} messages: "
            f"{N_MESSAGES / results['b'][0]:,.0f} s for all"
        )
        for name in ("a", "b", "c"):
            print(f"ours / ({name}) = {rate / results[name][0]:.2f}")
        with_detector = results["ours+detector"][0]
        print(
            f"ours with the detector on the path: {with_detector:,.0f} msg/s, loss {det_lost}; "
            f"/ (a) = {with_detector / results['a'][0]:.2f}, / (c) = "
            f"{with_detector / results['c'][0]:.2f}"
        )


if __name__ == "__main__":
    main()
