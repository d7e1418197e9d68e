"""``citywatch simulate``: the simulated Hanoi fleet publishing to a broker or a file."""

import logging
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from citywatch import exit_codes

log = logging.getLogger(__name__)

DEFAULT_DURATION_S = 3600.0
MAX_PAST_S = 7 * 86400.0
"""Decoders refuse reports older than this (telemetry.DecodeLimits.max_past_s)."""


def simulate(
    broker: Annotated[
        str | None, typer.Option(help="Publish to this broker, mqtt://HOST:PORT.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(help='Write JSON lines {"topic": …, "payload": {…}} to this file instead.'),
    ] = None,
    devices: Annotated[
        int, typer.Option(help="Fleet size (≈60 % cabinets, 40 % cable segments).")
    ] = 1000,
    period: Annotated[float, typer.Option(help="Seconds between a device's reports.")] = 60.0,
    duration: Annotated[
        float | None,
        typer.Option(
            help="Simulated seconds (default: the scenario's length, else 3600); "
            "0 runs until interrupted (real time or slower)."
        ),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            help="Time compression: 60 plays an hour in a minute; 0 = as fast as possible "
            "(default: 1 with --broker, 0 with --output)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the fleet, physics and fault placement.")] = 1,
    scenario: Annotated[
        str | None,
        typer.Option(help="Scenario file (TOML/YAML) or shipped name, e.g. monsoon_evening."),
    ] = None,
    labels: Annotated[
        Path | None, typer.Option(help="Write the injected faults' ground truth here (CSV).")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            help="Simulation start, ISO 8601 (naive = UTC). Default: now for real time, "
            "now minus the duration when time-compressed (the data ends at the present)."
        ),
    ] = None,
    lead_in: Annotated[
        float,
        typer.Option(
            help="Quiet seconds before the scenario's clock starts (its fault times count "
            "from here; the default --duration grows by it): history for detectors."
        ),
    ] = 0.0,
    mode: Annotated[
        str,
        typer.Option(
            help="MQTT connections: auto (per device up to 200 devices), per-device, pooled."
        ),
    ] = "auto",
    connections: Annotated[int, typer.Option(help="Connections in pooled mode.")] = 4,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    cut_scenario: Annotated[
        bool,
        typer.Option(
            help="Allow a --duration that ends before some of the scenario's faults start "
            "(those are not injected); without it such a run is refused."
        ),
    ] = False,
) -> None:
    """Run the simulated city: a seeded fleet of cabinets and cable segments, with faults."""
    from simulators.fleet import build_fleet
    from simulators.injection import ResolveError
    from simulators.labels import parse_iso_utc, write_labels
    from simulators.publisher import MqttSink, PublishError, parse_broker_url
    from simulators.runner import run
    from simulators.scenario import QUIET, ScenarioError, load_scenario
    from simulators.simulation import Simulation
    from simulators.sinks import FileSink, Sink
    from simulators.wards import load_wards

    if (broker is None) == (output is None):
        raise typer.BadParameter(
            "give exactly one of --broker or --output", param_hint="--broker/--output"
        )
    if broker is not None:
        try:
            parse_broker_url(broker)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--broker") from None
    if devices < 1:
        raise typer.BadParameter(f"must be at least 1, got {devices}", param_hint="--devices")
    if period <= 0:
        raise typer.BadParameter(f"must be positive, got {period:g}", param_hint="--period")
    if speed is None:
        speed = 0.0 if output is not None else 1.0
    if speed < 0:
        raise typer.BadParameter(
            f"must be >= 0 (0 = as fast as possible), got {speed:g}", param_hint="--speed"
        )
    if mode not in ("auto", "per-device", "pooled"):
        raise typer.BadParameter(
            f"must be auto, per-device or pooled, got {mode!r}", param_hint="--mode"
        )
    if connections < 1:
        raise typer.BadParameter(
            f"must be at least 1, got {connections}", param_hint="--connections"
        )
    if output is not None and not output.parent.is_dir():
        raise typer.BadParameter(f"folder {output.parent} does not exist", param_hint="--output")
    if labels is not None and not labels.parent.is_dir():
        raise typer.BadParameter(f"folder {labels.parent} does not exist", param_hint="--labels")

    wards = load_wards()
    story = QUIET
    if scenario is not None:
        try:
            story = load_scenario(scenario, {w.codename for w in wards})
        except ScenarioError as exc:
            raise typer.BadParameter(str(exc), param_hint="--scenario") from None
    if lead_in < 0:
        raise typer.BadParameter(f"must not be negative, got {lead_in:g}", param_hint="--lead-in")
    length = duration if duration is not None else lead_in + (story.duration or DEFAULT_DURATION_S)
    if length < 0:
        raise typer.BadParameter(
            f"must be positive (or 0: endless), got {length:g}", param_hint="--duration"
        )
    endless = length == 0
    unplayed = [f for f in story.faults if lead_in + f.at >= length]
    if unplayed and not endless and not cut_scenario:
        needed = lead_in + max(f.at + f.duration for f in story.faults)
        first = min(lead_in + f.at for f in unplayed)
        raise typer.BadParameter(
            f"{length:g} s ends before {len(unplayed)} of the {len(story.faults)} faults of "
            f"scenario {story.name!r} start (the first at {first:g} s): give at least "
            f"{needed:g} s, or --cut-scenario to play only the faults that fit",
            param_hint="--duration",
        )
    if endless and not 0 < speed <= 1:
        raise typer.BadParameter(
            "an endless run (--duration 0) needs 0 < --speed <= 1: faster, device clocks "
            "would run into the future",
            param_hint="--duration",
        )
    now_ms = int(time.time() * 1000)
    if start is not None:
        try:
            start_ms = parse_iso_utc(start)
        except ValueError:
            raise typer.BadParameter(
                f"{start!r} is not ISO 8601 (e.g. 2026-07-01T18:00:00Z)", param_hint="--start"
            ) from None
    else:
        start_ms = now_ms if speed == 1 or endless else now_ms - round(length * 1000)
    if start_ms < now_ms - MAX_PAST_S * 1000:
        log.warning("the run starts more than 7 days ago: ingest will refuse its oldest reports")

    fleet = build_fleet(devices, seed, wards)
    try:
        sim = Simulation(
            fleet,
            story,
            start_ms=start_ms,
            duration_s=None if endless else length,
            lead_in_s=lead_in,
            period_s=period,
            seed=seed,
        )
    except ResolveError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scenario") from None
    log.info(
        "fleet of %d (%d cabinets, %d cable segments) in %d wards; scenario %s; "
        "%g s from %s at speed %g",
        len(fleet),
        len(fleet.cabinets),
        len(fleet.segments),
        len({d.ward for d in fleet.devices}),
        story.name,
        length,
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start_ms / 1000)),
        speed,
    )
    sink: Sink
    if broker is not None:
        try:
            mqtt_sink = MqttSink(broker, fleet, mode=mode, connections=connections)  # type: ignore[arg-type]
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--mode") from None
        try:
            mqtt_sink.connect()
        except PublishError as exc:  # not a usage error: the broker is not there (yet)
            mqtt_sink.close(timeout=0)
            Console(stderr=True).print(f"[red]error:[/] {exc}")
            raise typer.Exit(exit_codes.UNAVAILABLE) from None
        sink = mqtt_sink
    else:
        assert output is not None
        sink = FileSink(output)
    # SIGTERM (a supervisor stopping the run, as ``citywatch demo`` does) interrupts like
    # Ctrl-C, so the ground truth of the faults injected so far is still written.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        summary = run(sim, sink, speed=speed, progress=progress)
    finally:
        if labels is not None:
            rows = write_labels(labels, sim.labels_so_far())
            log.info("wrote %d ground-truth labels to %s", rows, labels)
    console = Console(stderr=True)
    for line in summary.lines():
        console.print(line)
    if summary.failed:
        raise typer.Exit(1)
