"""Simulated Hanoi devices: a seeded fleet, device physics, fault scenarios, publishing.

The pieces, each reusable on its own (tests, the e2e run and benchmarks use them directly):

>>> from simulators import build_fleet, load_wards, Simulation
>>> fleet = build_fleet(50, seed=1, wards=load_wards())
>>> sim = Simulation(fleet, start_ms=1_784_109_600_000, duration_s=600, period_s=60, seed=1)
>>> sum(1 for m in sim if m.topic.endswith("/telemetry"))
500

* ``load_wards`` / ``build_fleet``: the 126 wards and communes, streets and devices.
* ``load_scenario``: a TOML/YAML fault story (or a shipped one by name), validated.
* ``Simulation``: messages (topic, payload bytes, device time) in time order, plus the
  ground-truth ``labels()`` of the faults it injected (``write_labels`` makes the CSV).
* Sinks: ``MqttSink`` (MQTT v5, QoS 1, per-device Last Will or pooled) and ``FileSink``
  (JSON lines); ``run`` paces a simulation into a sink and returns a ``RunSummary``.
"""

from simulators.fleet import Fleet, build_fleet
from simulators.labels import Label, read_labels, write_labels
from simulators.publisher import MqttSink, PublishError
from simulators.runner import RunSummary, run
from simulators.scenario import QUIET, Scenario, ScenarioError, load_scenario, shipped_scenarios
from simulators.simulation import SimMessage, Simulation
from simulators.sinks import FileSink, Sink, SinkStats, read_jsonl
from simulators.wards import Ward, load_wards

__all__ = [
    "QUIET",
    "FileSink",
    "Fleet",
    "Label",
    "MqttSink",
    "PublishError",
    "RunSummary",
    "Scenario",
    "ScenarioError",
    "SimMessage",
    "Simulation",
    "Sink",
    "SinkStats",
    "Ward",
    "build_fleet",
    "load_scenario",
    "load_wards",
    "read_jsonl",
    "read_labels",
    "run",
    "shipped_scenarios",
    "write_labels",
]
