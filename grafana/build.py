"""Builds the NOC dashboards (``grafana/dashboards/*.json``) from the definitions below.

The boards are data: panels, raw InfluxQL queries, variables. Writing them here keeps
uids, datasource references and styling consistent; the JSON files are committed so
Grafana provisions them as they are, and a test checks they equal this script's output
(run ``.venv/bin/python grafana/build.py`` after editing).

Measurements the boards read (all written by citywatch; see README "Storage schema"):
``cabinet`` and ``cable_segment`` (one field per catalogue metric), ``device_status``,
``citywatch_alert``, ``citywatch_score``, ``citywatch_ingest``, ``citywatch_ingest_rejected``,
``citywatch_detector``.
"""

import json
import sys
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "influxdb", "uid": "citywatch-influxdb"}
OUT = Path(__file__).parent / "dashboards"
Json = dict[str, Any]

WARD_FILTER = '"ward" =~ /^$ward$/'
DEVICE_FILTER = '"device" =~ /^$device$/'


def target(query: str, ref: str = "A", fmt: str = "time_series", alias: str = "") -> Json:
    t: Json = {
        "refId": ref,
        "datasource": DATASOURCE,
        "rawQuery": True,
        "resultFormat": fmt,
        "query": query,
    }
    if alias:
        t["alias"] = alias
    return t


def panel(
    kind: str,
    title: str,
    targets: list[Json],
    pos: tuple[int, int, int, int],
    unit: str = "",
    description: str = "",
    options: Json | None = None,
    defaults: Json | None = None,
    transformations: list[Json] | None = None,
) -> Json:
    x, y, w, h = pos
    field_defaults: Json = {"unit": unit} if unit else {}
    field_defaults.update(defaults or {})
    p: Json = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": field_defaults, "overrides": []},
        "options": options or {},
    }
    if transformations:
        p["transformations"] = transformations
    return p


def variable(name: str, query: str, label: str, multi: bool = True) -> Json:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": query,
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
    }


def thresholds(*steps: tuple[float | None, str]) -> Json:
    return {
        "thresholds": {
            "mode": "absolute",
            "steps": [{"value": v, "color": c} for v, c in steps],
        }
    }


def dashboard(
    uid: str, title: str, panels: list[Json], variables: list[Json], **extra: Any
) -> Json:
    for i, p in enumerate(panels, start=1):
        p["id"] = i
    board: Json = {
        "uid": uid,
        "title": title,
        "tags": ["citywatch"],
        "timezone": "Asia/Ho_Chi_Minh",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "graphTooltip": 1,
        "refresh": "10s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "panels": panels,
    }
    board.update(extra)
    return board


def ward_variable(measurement: str = "cabinet") -> Json:
    return variable("ward", f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "ward"', "Ward")


def alert_annotation(where: str) -> Json:
    return {
        "name": "Alerts",
        "datasource": DATASOURCE,
        "enable": True,
        "iconColor": "red",
        "query": (
            'SELECT "explanation", "severity", "type" FROM "citywatch_alert" '
            f"WHERE {where} AND $timeFilter"
        ),
        "textColumn": "explanation",
        "tagsColumn": "type,severity",
    }


def city_overview() -> Json:
    status_q = (
        'SELECT last("lat") AS "lat", last("lon") AS "lon", last("online") AS "online", '
        'last("street") AS "street" FROM "device_status" '
        f'WHERE {WARD_FILTER} GROUP BY "device", "kind", "ward"'
    )
    geomap_options = {
        "view": {"id": "coords", "lat": 21.03, "lon": 105.85, "zoom": 11},
        "controls": {"showZoom": True, "mouseWheelZoom": True},
        "basemap": {"type": "default", "name": "Basemap"},
        "layers": [
            {
                "type": "markers",
                "name": "Devices",
                "location": {"mode": "coords", "latitude": "lat", "longitude": "lon"},
                "config": {
                    "showLegend": True,
                    "style": {
                        "size": {"fixed": 5},
                        "color": {"field": "online"},
                        "opacity": 0.8,
                    },
                },
            }
        ],
        "tooltip": {"mode": "details"},
    }
    online_defaults = {
        "color": {"mode": "thresholds"},
        **thresholds((None, "red"), (1, "green")),
    }
    panels = [
        panel(
            "geomap",
            "Cabinets and cable segments",
            [target(status_q, fmt="table")],
            (0, 0, 14, 16),
            description="Every device at its location; green online, red offline.",
            options=geomap_options,
            defaults=online_defaults,
            transformations=[{"id": "merge", "options": {}}],
        ),
        panel(
            "stat",
            "Online",
            [
                target(
                    'SELECT count("online") FROM (SELECT last("online") AS "online" '
                    f'FROM "device_status" WHERE {WARD_FILTER} GROUP BY "device") '
                    'WHERE "online" = true'
                )
            ],
            (14, 0, 5, 4),
            defaults={"noValue": "0", **thresholds((None, "green"))},
        ),
        panel(
            "stat",
            "Offline",
            [
                target(
                    'SELECT count("online") FROM (SELECT last("online") AS "online" '
                    f'FROM "device_status" WHERE {WARD_FILTER} GROUP BY "device") '
                    'WHERE "online" = false'
                )
            ],
            (19, 0, 5, 4),
            defaults={"noValue": "0", **thresholds((None, "green"), (1, "red"))},
        ),
        panel(
            "stat",
            "Alert changes in range",
            [
                target(
                    'SELECT count("alert_id") FROM "citywatch_alert" '
                    f"WHERE {WARD_FILTER} AND $timeFilter"
                )
            ],
            (14, 4, 10, 4),
            defaults={"noValue": "0", **thresholds((None, "green"), (1, "orange"))},
        ),
        panel(
            "barchart",
            "Alerts raised by ward",
            [
                target(
                    'SELECT count("alert_id") AS "alerts" FROM "citywatch_alert" '
                    f"WHERE \"transition\" = 'raised' AND {WARD_FILTER} AND $timeFilter "
                    'GROUP BY "ward"',
                    fmt="table",
                )
            ],
            (14, 8, 10, 8),
            options={"orientation": "horizontal", "xField": "ward"},
            transformations=[{"id": "merge", "options": {}}],
        ),
        panel(
            "table",
            "Area incidents",
            [
                target(
                    'SELECT last("explanation") AS "what", last("severity") AS "severity", '
                    'last("state") AS "state" FROM "citywatch_alert" '
                    f"WHERE \"type\" = 'area_outage' AND {WARD_FILTER} AND $timeFilter "
                    'GROUP BY "ward"',
                    fmt="table",
                )
            ],
            (0, 16, 24, 7),
            transformations=[{"id": "merge", "options": {}}],
        ),
    ]
    return dashboard("cw-city", "citywatch · City overview", panels, [ward_variable()])


def cabinet_detail() -> Json:
    where = f"{WARD_FILTER} AND {DEVICE_FILTER} AND $timeFilter"
    by = 'GROUP BY time($__interval), "device" fill(none)'

    def series(fields: list[tuple[str, str]], agg: str = "mean") -> list[Json]:
        refs = "ABCDEFGH"
        return [
            target(
                f'SELECT {agg}("{f}") FROM "cabinet" WHERE {where} {by}',
                ref=refs[i],
                alias=f"$tag_device {label}",
            )
            for i, (f, label) in enumerate(fields)
        ]

    panels = [
        panel(
            "timeseries",
            "Temperature",
            series([("temp_inside", "inside"), ("temp_outside", "outside")]),
            (0, 0, 12, 8),
            unit="celsius",
        ),
        panel(
            "timeseries", "Humidity", series([("humidity", "")]), (12, 0, 12, 8), unit="humidity"
        ),
        panel(
            "timeseries",
            "Mains voltage",
            series([("mains_voltage", "")]),
            (0, 8, 8, 8),
            unit="volt",
        ),
        panel(
            "timeseries",
            "Battery state of charge",
            series([("battery_soc", "")]),
            (8, 8, 8, 8),
            unit="percent",
        ),
        panel(
            "timeseries",
            "Battery voltage",
            series([("battery_voltage", "")]),
            (16, 8, 8, 8),
            unit="volt",
        ),
        panel("timeseries", "Fan speed", series([("fan_rpm", "")]), (0, 16, 8, 8), unit="rotrpm"),
        panel("timeseries", "Power draw", series([("power_draw", "")]), (8, 16, 8, 8), unit="watt"),
        panel(
            "timeseries",
            "Water level",
            series([("water_level", "")], agg="max"),
            (16, 16, 8, 8),
            unit="lengthmm",
        ),
        panel(
            "state-timeline",
            "Door and mains",
            [
                target(
                    f'SELECT last("door_open") AS "door open", last("on_battery") AS '
                    f'"on battery" FROM "cabinet" WHERE {where} {by}'
                )
            ],
            (0, 24, 12, 6),
        ),
        panel(
            "timeseries",
            "Detector score",
            [
                target(
                    'SELECT max("score") FROM "citywatch_score" '
                    f'WHERE {where} GROUP BY time($__interval), "device", "metric" fill(none)',
                    alias="$tag_device $tag_metric",
                )
            ],
            (12, 24, 12, 6),
            defaults={"min": 0, "max": 1},
        ),
    ]
    device = variable(
        "device",
        f'SHOW TAG VALUES FROM "cabinet" WITH KEY = "device" WHERE {WARD_FILTER}',
        "Cabinet",
    )
    board = dashboard("cw-cabinet", "citywatch · Cabinet detail", panels, [ward_variable(), device])
    board["annotations"]["list"].append(alert_annotation(f"{WARD_FILTER} AND {DEVICE_FILTER}"))
    return board


def cable_routes() -> Json:
    where = f'{WARD_FILTER} AND "route" =~ /^$route$/ AND $timeFilter'
    by = 'GROUP BY time($__interval), "route", "device" fill(none)'

    def per_segment(field: str, agg: str = "mean") -> list[Json]:
        return [
            target(
                f'SELECT {agg}("{field}") FROM "cable_segment" WHERE {where} {by}',
                alias="$tag_route · $tag_device",
            )
        ]

    panels = [
        panel(
            "timeseries",
            "Optical loss per segment",
            per_segment("optical_loss", "max"),
            (0, 0, 12, 9),
            unit="dB",
        ),
        panel(
            "timeseries",
            "Moisture per segment",
            per_segment("moisture", "max"),
            (12, 0, 12, 9),
            unit="percent",
        ),
        panel(
            "timeseries",
            "Strain per segment",
            per_segment("strain", "max"),
            (0, 9, 12, 9),
            unit="µε",
        ),
        panel(
            "timeseries",
            "Duct temperature per segment",
            per_segment("temp"),
            (12, 9, 12, 9),
            unit="celsius",
        ),
        panel(
            "state-timeline",
            "Signal presence",
            [
                target(
                    f'SELECT min("signal") FROM "cable_segment" WHERE {where} {by}',
                    alias="$tag_route · $tag_device",
                )
            ],
            (0, 18, 24, 8),
        ),
    ]
    route = variable(
        "route",
        f'SHOW TAG VALUES FROM "cable_segment" WITH KEY = "route" WHERE {WARD_FILTER}',
        "Route",
    )
    board = dashboard(
        "cw-cables", "citywatch · Cable routes", panels, [ward_variable("cable_segment"), route]
    )
    board["annotations"]["list"].append(alert_annotation(WARD_FILTER))
    return board


def alerts_board() -> Json:
    latest = (
        'SELECT last("state") AS "state", last("severity") AS "severity", '
        'last("explanation") AS "explanation", last("acknowledged") AS "acknowledged", '
        'last("alert_id") AS "alert" FROM "citywatch_alert" '
        f'WHERE {WARD_FILTER} AND $timeFilter GROUP BY "ward", "device", "type"'
    )
    panels = [
        panel(
            "table",
            "Alerts (latest state per device and type)",
            [target(latest, fmt="table")],
            (0, 0, 24, 10),
            transformations=[{"id": "merge", "options": {}}],
        ),
        panel(
            "timeseries",
            "Alert changes",
            [
                target(
                    'SELECT count("alert_id") FROM "citywatch_alert" '
                    f"WHERE {WARD_FILTER} AND $timeFilter "
                    'GROUP BY time($__interval), "transition" fill(0)',
                    alias="$tag_transition",
                )
            ],
            (0, 10, 12, 8),
        ),
        panel(
            "stat",
            "Time to acknowledge (mean)",
            [
                target(
                    'SELECT mean("ack_after_s") FROM "citywatch_alert" '
                    f"WHERE {WARD_FILTER} AND $timeFilter"
                )
            ],
            (12, 10, 6, 8),
            unit="s",
        ),
        panel(
            "stat",
            "Time to resolve (mean)",
            [
                target(
                    'SELECT mean("resolve_after_s") FROM "citywatch_alert" '
                    f"WHERE {WARD_FILTER} AND $timeFilter"
                )
            ],
            (18, 10, 6, 8),
            unit="s",
        ),
        panel(
            "table",
            "Incidents",
            [
                target(
                    'SELECT last("state") AS "state", last("explanation") AS "what", '
                    'last("severity") AS "severity" FROM "citywatch_alert" '
                    f'WHERE "incident_root" = true AND {WARD_FILTER} AND $timeFilter '
                    'GROUP BY "ward", "type"',
                    fmt="table",
                )
            ],
            (0, 18, 24, 8),
            transformations=[{"id": "merge", "options": {}}],
        ),
    ]
    board = dashboard("cw-alerts", "citywatch · Alerts", panels, [ward_variable()])
    board["annotations"]["list"].append(alert_annotation(WARD_FILTER))
    return board


def pipeline_health() -> Json:
    tf = "$timeFilter"
    rate_by = "GROUP BY time($__interval) fill(none)"

    def rate(field: str, ref: str) -> Json:
        return target(
            f'SELECT non_negative_derivative(max("{field}"), 1s) FROM "citywatch_ingest" '
            f"WHERE {tf} {rate_by}",
            ref=ref,
            alias=field,
        )

    panels = [
        panel(
            "timeseries",
            "Messages in / written per second",
            [rate("received", "A"), rate("reports", "B"), rate("points_written", "C")],
            (0, 0, 12, 8),
            unit="ops",
        ),
        panel(
            "timeseries",
            "Rejected by reason (per second)",
            [
                target(
                    'SELECT non_negative_derivative(max("count"), 1s) FROM '
                    f'"citywatch_ingest_rejected" WHERE {tf} '
                    'GROUP BY time($__interval), "reason" fill(none)',
                    alias="$tag_reason",
                )
            ],
            (12, 0, 12, 8),
            unit="ops",
        ),
        panel(
            "timeseries",
            "Spooled and replayed points per second (and spool writes the disk refused)",
            [
                rate("points_spooled", "A"),
                rate("points_replayed", "B"),
                rate("spool_write_errors", "C"),
            ],
            (0, 8, 12, 8),
            unit="ops",
        ),
        panel(
            "timeseries",
            "InfluxDB write latency (mean) and broker lag (mean)",
            [
                target(
                    f'SELECT mean("write_latency_s_mean") FROM "citywatch_ingest" WHERE {tf} '
                    f"{rate_by}",
                    alias="write latency",
                ),
                target(
                    f'SELECT mean("broker_lag_s_mean") FROM "citywatch_ingest" WHERE {tf} '
                    f"{rate_by}",
                    ref="B",
                    alias="broker lag",
                ),
            ],
            (12, 8, 12, 8),
            unit="s",
        ),
        panel(
            "timeseries",
            "Detector throughput",
            [
                target(
                    f'SELECT mean("readings_per_s") FROM "citywatch_detector" WHERE {tf} {rate_by}',
                    alias="readings/s",
                )
            ],
            (0, 16, 12, 8),
            unit="ops",
        ),
        panel(
            "timeseries",
            "Detector series and events",
            [
                target(
                    f'SELECT last("series") FROM "citywatch_detector" WHERE {tf} {rate_by}',
                    alias="series",
                ),
                target(
                    f'SELECT non_negative_derivative(max("events"), 1s) FROM '
                    f'"citywatch_detector" WHERE {tf} {rate_by}',
                    ref="B",
                    alias="events/s",
                ),
            ],
            (12, 16, 12, 8),
        ),
    ]
    return dashboard("cw-pipeline", "citywatch · Pipeline health", panels, [])


BOARDS = {
    "city-overview.json": city_overview,
    "cabinet-detail.json": cabinet_detail,
    "cable-routes.json": cable_routes,
    "alerts.json": alerts_board,
    "pipeline-health.json": pipeline_health,
}


def render() -> dict[str, str]:
    """File name → JSON text of every board."""
    return {
        name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        for name, build in BOARDS.items()
    }


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
