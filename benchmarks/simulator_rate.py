"""Simulator publish rate against the broker's raw rate, measured in the same run.

    .venv/bin/python benchmarks/simulator_rate.py [--devices 10000] [--period 1] [--duration 20]

Against a private Mosquitto on a free port:

1. raw: a plain paho-mqtt publisher (one connection, paho's network thread, MQTT v5,
   QoS 1) sending payloads of the simulator's mean size; the rate counts broker acks.
2. raw, manual loop: the same with paho's loop driven from the publishing thread (the
   way the simulator's publisher drives its connections).
3. simulator flat out (--speed 0): the whole generation + publish pipeline.
4. simulator paced in real time (--speed 1): does it hold the schedule of N devices
   reporting every period? Prints the achieved rate and the worst lag behind schedule.
"""

import argparse
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from citywatch.local_services import LocalMosquitto
from simulators.fleet import build_fleet
from simulators.publisher import MqttSink
from simulators.runner import RunSummary, run
from simulators.simulation import Simulation
from simulators.wards import load_wards


def mean_payload_size(devices: int) -> int:
    fleet = build_fleet(devices, 1, load_wards())
    sim = Simulation(fleet, start_ms=int(time.time() * 1000), duration_s=1, period_s=1)
    sizes = [len(m.payload) for m in sim if m.topic.endswith("/telemetry")]
    return round(sum(sizes) / len(sizes))


WINDOW = 2000
"""Raw publishers keep at most this many messages unacknowledged (paho slows down badly
when hundreds of thousands of QoS 1 messages queue up inside it)."""


def _clients(port: int, connections: int, name: str) -> list[mqtt.Client]:
    clients = []
    for k in range(connections):
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{name}-{k}", protocol=mqtt.MQTTv5
        )
        client.max_inflight_messages_set(1000)
        client.connect("127.0.0.1", port)
        clients.append(client)
    return clients


def raw_threaded(port: int, n: int, size: int, connections: int) -> float:
    """Textbook paho: ``loop_start()`` network threads, publish from the main thread."""
    acked = 0
    cond = threading.Condition()

    def on_publish(*_: object) -> None:
        nonlocal acked
        with cond:
            acked += 1
            cond.notify_all()

    clients = _clients(port, connections, "raw-threaded")
    for client in clients:
        client.on_publish = on_publish
        client.loop_start()
    while not all(c.is_connected() for c in clients):
        time.sleep(0.01)
    payload = b"x" * size
    t0 = time.perf_counter()
    for i in range(n):
        with cond:
            cond.wait_for(lambda i=i: i - acked < WINDOW, timeout=30)
        clients[i % connections].publish(
            f"cw/v1/bench/cabinet/cab-{i % 10000:06d}/telemetry", payload, qos=1
        )
    with cond:
        cond.wait_for(lambda: acked >= n, timeout=120)
    elapsed = time.perf_counter() - t0
    for client in clients:
        client.disconnect()
        client.loop_stop()
    return acked / elapsed


def raw_manual(port: int, n: int, size: int, connections: int) -> float:
    """paho driven from the publishing thread (as the simulator's publisher does)."""
    acked = 0

    def on_publish(*_: object) -> None:
        nonlocal acked
        acked += 1

    clients = _clients(port, connections, "raw-manual")
    for client in clients:
        client.on_publish = on_publish
    while not all(c.is_connected() for c in clients):
        for client in clients:
            client.loop(0.01)
    payload = b"x" * size
    t0 = time.perf_counter()
    for i in range(n):
        clients[i % connections].publish(
            f"cw/v1/bench/cabinet/cab-{i % 10000:06d}/telemetry", payload, qos=1
        )
        if i % 256 == 0 or i - acked >= WINDOW:
            for client in clients:
                client.loop_read(1000)
    deadline = time.monotonic() + 120
    while acked < n and time.monotonic() < deadline:
        for client in clients:
            client.loop(0.001)
    elapsed = time.perf_counter() - t0
    for client in clients:
        client.disconnect()
        client.loop(0.01)
    return acked / elapsed


def simulate(
    url: str, devices: int, period: float, duration: float, speed: float, connections: int
) -> RunSummary:
    fleet = build_fleet(devices, 1, load_wards())
    start = int(time.time() * 1000) - (round(duration * 1000) if speed != 1 else 0)
    sim = Simulation(fleet, start_ms=start, duration_s=duration, period_s=period, seed=1)
    sink = MqttSink(url, fleet, mode="pooled", connections=connections)
    sink.connect()
    return run(sim, sink, speed=speed, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--period", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=20.0, help="simulated seconds per run")
    parser.add_argument("--connections", type=int, default=4, help="pooled connections (all runs)")
    args = parser.parse_args()

    size = mean_payload_size(min(args.devices, 2000))
    n_raw = int(args.devices * args.duration / args.period)
    with LocalMosquitto() as broker:
        conns = args.connections
        threaded = raw_threaded(broker.port, n_raw, size, conns)
        manual = raw_manual(broker.port, n_raw, size, conns)
        flat = simulate(broker.url, args.devices, args.period, args.duration, 0, conns)
        paced = simulate(broker.url, args.devices, args.period, args.duration, 1, conns)

    schedule = args.devices / args.period
    print(
        f"payload {size} B (mean telemetry report), {n_raw} messages per raw run, "
        f"{args.connections} connections everywhere, MQTT v5 QoS 1"
    )
    print(f"raw paho, network thread : {threaded:9,.0f} msg/s acknowledged")
    print(f"raw paho, manual loop    : {manual:9,.0f} msg/s acknowledged")
    print(
        f"simulator, --speed 0     : {flat.rate:9,.0f} msg/s  "
        f"({flat.sent} sent, {flat.failed} failed)"
    )
    print(
        f"simulator, --speed 1     : {paced.rate:9,.0f} msg/s  schedule {schedule:,.0f} msg/s, "
        f"worst lag {paced.max_lag_s:.2f} s ({paced.sent} sent, {paced.failed} failed)"
    )
    print(f"ratio simulator / raw paho (network thread): {flat.rate / threaded:.2f}")
    print(f"ratio simulator / raw paho (manual loop)   : {flat.rate / manual:.2f}")
    print(f"headroom over the {args.devices}-device schedule: {flat.rate / schedule:.2f}x")


if __name__ == "__main__":
    main()
