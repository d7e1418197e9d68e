"""Builds the NOC dashboards (``grafana/dashboards/*.json``) from the definitions below.

The boards are data: panels, raw InfluxQL queries, variables. Writing them here keeps
uids, datasource references and styling consistent; the JSON files are committed so
Grafana provisions them as they are, and a test checks they equal this script's output
(run ``.venv/bin/python grafana/build.py`` after editing).

Measurements the boards read (all written by citywatch; see README "Storage schema"):
``cabinet`` and ``cable_segment`` (one field per catalogue metric), ``device_status``,
``citywatch_alert``, ``citywatch_score``, ``citywatch_ingest``, ``citywatch_ingest_rejected``,
``citywatch_detector``.

Grafana version: the compose file pins ``grafana/grafana:11.3.1``. The boards rely on its
geomap panel (markers and route layers, each drawing the first frame it gets; a markers
layer draws line geometries with its circle's stroke; data links in the tooltip), the
``joinByField``/``filterByValue``/``sortBy`` transformations and the spatial one's line
builder, custom
variables with ``text : value`` pairs and InfluxDB (InfluxQL) annotations with
title/text/tags columns; all of these exist in Grafana 10.x and 11.x.

Ward names: tags and topics carry codenames (``phuong_dinh_cong``); wherever a person
reads a ward (variable drop-downs, table cells) the board shows the catalogue's
Vietnamese name (``Phường Định Công``), generated here from ``telemetry.wards``.
"""

import json
import sys
import unicodedata
from pathlib import Path
from typing import Any

from telemetry.wards import load_wards

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
    overrides: list[Json] | None = None,
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
        "fieldConfig": {"defaults": field_defaults, "overrides": overrides or []},
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
        "links": dashboard_links(uid),
    }
    board.update(extra)
    return board


def _ascii_key(text: str) -> str:
    """Sort key for Vietnamese names: letters without their diacritics (``đ`` as ``d``)."""
    plain = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in plain if not unicodedata.combining(c)).casefold()


def ward_variable() -> Json:
    """The ward drop-down: a custom variable of ``Vietnamese name : codename`` pairs from
    the catalogue, so a person picks ``Phường Định Công`` and queries get the codename
    the tags carry. (A query variable over the tag values could only show codenames.)"""
    wards = sorted(load_wards(), key=lambda w: _ascii_key(w.name))
    options = [{"text": "All", "value": "$__all", "selected": True}]
    options += [{"text": w.name, "value": w.codename, "selected": False} for w in wards]
    return {
        "name": "ward",
        "label": "Phường / xã",
        "type": "custom",
        "query": ",".join(f"{w.name} : {w.codename}" for w in wards),
        "options": options,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
    }


def ward_names_mapping() -> Json:
    """Value mappings that show a ward codename as its Vietnamese name (table cells)."""
    return {
        "type": "value",
        "options": {w.codename: {"text": w.name, "index": i} for i, w in enumerate(load_wards())},
    }


def alert_annotations(where: str) -> list[Json]:
    """Alert raised and alert cleared marks on a board's time axes: the device as title,
    the explanation as text, type, severity and transition as tags."""
    select = (
        'SELECT "explanation", "device", "type", "severity", "transition" '
        'FROM "citywatch_alert" WHERE '
    )
    kinds = [
        ("Alerts raised", "red", "\"transition\" = 'raised'"),
        ("Alerts cleared", "green", '"transition" =~ /^(cleared|resolved)$/'),
    ]
    return [
        {
            "name": name,
            "datasource": DATASOURCE,
            "enable": True,
            "iconColor": color,
            "query": f"{select}{transition} AND {where} AND $timeFilter",
            "titleColumn": "device",
            "textColumn": "explanation",
            "tagsColumn": "type,severity,transition",
        }
        for name, color, transition in kinds
    ]


# --- Links between boards -------------------------------------------------------------
# overview → ward board (ward) → cabinet detail (ward, device) or cable routes (ward,
# route); every board links back to the others and keeps the time range and variables.

BOARD_PATHS = {
    "cw-city": "city-overview",
    "cw-ward": "ward",
    "cw-cabinet": "cabinet-detail",
    "cw-cables": "cable-routes",
    "cw-alerts": "alerts",
    "cw-pipeline": "pipeline-health",
}
BOARD_TITLES = {
    "cw-city": "City overview",
    "cw-ward": "Ward",
    "cw-cabinet": "Cabinet detail",
    "cw-cables": "Cable routes",
    "cw-alerts": "Alerts",
    "cw-pipeline": "Pipeline health",
}


def board_url(uid: str, **variables: str) -> str:
    """A link to a board: ``variables`` name its template variables, values may hold
    Grafana's ``${__data.fields.X}`` field references."""
    query = "&".join(f"var-{k}={v}" for k, v in variables.items())
    return f"/d/{uid}/{BOARD_PATHS[uid]}?{query + '&' if query else ''}${{__url_time_range}}"


def data_link(title: str, uid: str, **variables: str) -> Json:
    return {"title": title, "url": board_url(uid, **variables)}


WARD_LINK = data_link("Ward board: ${__data.fields.ward}", "cw-ward", ward="${__data.fields.ward}")
CABINET_LINK = data_link(
    "Cabinet detail: ${__data.fields.device}",
    "cw-cabinet",
    ward="${__data.fields.ward}",
    device="${__data.fields.device}",
)
ROUTE_LINK = data_link(
    "Cable route: ${__data.fields.route}",
    "cw-cables",
    ward="${__data.fields.ward}",
    route="${__data.fields.route}",
)


def dashboard_links(uid: str) -> list[Json]:
    """The board bar's links to every other citywatch board (variables carried along)."""
    return [
        {
            "title": title,
            "type": "link",
            "url": f"/d/{other}/{BOARD_PATHS[other]}",
            "icon": "dashboard",
            "includeVars": True,
            "keepTime": True,
            "targetBlank": False,
            "asDropdown": False,
            "tags": [],
        }
        for other, title in BOARD_TITLES.items()
        if other != uid
    ]


def override(field: str, *properties: tuple[str, Any]) -> Json:
    return {
        "matcher": {"id": "byName", "options": field},
        "properties": [{"id": k, "value": v} for k, v in properties],
    }


# --- Worst open alert per device -------------------------------------------------------

ALERT_LOOKBACK = "30d"
"""How far back the map looks for the alerts still open: an alert raised earlier than
this and still open is not on the map (the alerts board lists it)."""

SEVERITY_LEVELS = ("warning", "minor", "major", "critical")
"""Ascending, as ``alerts.model.SEVERITY_RANK``: level 1 (warning) … 4 (critical)."""
OFFLINE_LEVEL = len(SEVERITY_LEVELS) + 1
LEVEL_STYLE = {
    1: ("warning", "blue"),
    2: ("minor", "yellow"),
    3: ("major", "orange"),
    4: ("critical", "red"),
    OFFLINE_LEVEL: ("offline", "purple"),
}
NO_ALERT = ("no open alert", "green")


def _open_alerts_at_least(condition: str, level: int, where: str) -> str:
    """Devices with an open alert matching ``condition``, each as one point ``level``.

    InfluxQL cannot group by a field (``alert_id``), so "the last transition of every
    alert" is not a query. Counting works instead: an alert's severity only rises
    (``severity_raised``), and it ends with exactly one ``cleared``-state transition
    (cleared or resolved; ``discarded`` ends alerts that were never raised). So the
    number of open alerts of a device whose severity is at least S is
    count(distinct ids of its active points at severity ≥ S) − count(distinct ids of
    its cleared points at severity ≥ S, not discarded), and the device has one iff that
    is > 0. Both counts look back ``ALERT_LOOKBACK``."""
    lookback = f"time > now() - {ALERT_LOOKBACK}"
    by = 'GROUP BY "ward", "device"'
    active = f"\"state\" = 'active' AND {condition} AND {where} AND {lookback}"
    ended = (
        f"\"state\" = 'cleared' AND \"transition\" != 'discarded' AND {condition} "
        f"AND {where} AND {lookback}"
    )
    opened = f'SELECT count(distinct("alert_id")) AS "n" FROM "citywatch_alert" WHERE {active} {by}'
    closed = (
        f'SELECT count(distinct("alert_id")) * -1 AS "n" FROM "citywatch_alert" WHERE {ended} {by}'
    )
    return (
        f'SELECT "n" * 0 + {level} AS "level" FROM (SELECT sum("n") AS "n" FROM ({opened}), '
        f'({closed}) {by}) WHERE "n" > 0 {by}'
    )


def worst_alert_by_device(where: str = WARD_FILTER) -> str:
    """The worst open alert ``level`` per device (series tagged ward, device): 1 warning …
    4 critical, 5 an open offline alert (offline has its own colour). All sources are
    ``citywatch_alert`` points, so InfluxQL merges them per device (it keeps points of
    different measurements apart: positions are joined to them in Grafana)."""
    sources = [
        _open_alerts_at_least(f'"severity" =~ /^({"|".join(SEVERITY_LEVELS[i:])})$/', i + 1, where)
        for i in range(len(SEVERITY_LEVELS))
    ]
    sources.append(_open_alerts_at_least("\"type\" = 'offline'", OFFLINE_LEVEL, where))
    return (
        'SELECT max("level") AS "level" FROM '
        + ", ".join(f"({q})" for q in sources)
        + ' GROUP BY "ward", "device"'
    )


def worst_alert_query(where: str = WARD_FILTER) -> str:
    """One row per device with an open alert (one frame: ``device``, ``level``)."""
    return f'SELECT "device", "level" FROM ({worst_alert_by_device(where)})'


def positions_query(where: str = WARD_FILTER) -> str:
    """Every device's last known place (one frame: tags as columns)."""
    return (
        'SELECT "device", "ward", "kind", "route", "position", "street", "lat", "lon" FROM '
        '(SELECT last("lat") AS "lat", last("lon") AS "lon", last("street") AS "street", '
        'last("position") AS "position" FROM "device_status" '
        f'WHERE {where} GROUP BY "ward", "device", "kind", "route")'
    )


def spans_query(where: str = WARD_FILTER) -> str:
    """Every cable span's upstream end (one frame: ``device`` is the segment the span leads
    to; ingest writes a ``cable_span`` point per segment whose predecessor it knows)."""
    return (
        'SELECT "device", "upstream", "up_lat", "up_lon" FROM (SELECT last("upstream") AS '
        '"upstream", last("up_lat") AS "up_lat", last("up_lon") AS "up_lon" FROM "cable_span" '
        f'WHERE {where} GROUP BY "ward", "route", "device")'
    )


def level_field_config() -> Json:
    """Colours and names of the worst-alert levels (the map's markers, table cells)."""
    steps = {
        str(level): {"text": text, "color": color, "index": level}
        for level, (text, color) in LEVEL_STYLE.items()
    }
    return {
        "mappings": [
            {"type": "value", "options": steps},
            {
                "type": "special",
                "options": {
                    "match": "null",
                    "result": {"text": NO_ALERT[0], "color": NO_ALERT[1], "index": 0},
                },
            },
        ],
        "color": {"mode": "thresholds"},
        **thresholds(
            (None, NO_ALERT[1]),
            *((float(level), color) for level, (_, color) in LEVEL_STYLE.items()),
        ),
    }


# Positions (A), worst alerts (B) and cable spans (C) become one row per device: joined on
# the device id (Grafana, since InfluxQL cannot join measurements), rows without a position
# (area alerts, devices never located) dropped.
JOIN_POSITIONS_AND_ALERTS = [
    {"id": "joinByField", "options": {"byField": "device", "mode": "outer"}},
    {
        "id": "filterByValue",
        "options": {
            "type": "exclude",
            "match": "any",
            "filters": [{"fieldName": "lat", "config": {"id": "isNull", "options": {}}}],
        },
    },
    {
        "id": "organize",
        "options": {
            "excludeByName": {"Time": True, "Time 1": True, "Time 2": True, "Time 3": True},
            "renameByName": {},
            "indexByName": {},
        },
    },
]

SPAN_LINES = {
    "id": "spatial",
    "options": {
        "action": "modify",
        "source": {"mode": "coords", "latitude": "up_lat", "longitude": "up_lon"},
        "modify": {
            "op": "lineBuilder",
            "target": {"mode": "coords", "latitude": "lat", "longitude": "lon"},
        },
    },
}
"""Then each segment's row gets the line of the span leading to it, from its predecessor's
place (up_lat, up_lon) to its own: Grafana's spatial "line builder" puts a geo field first
in the frame, empty where a row has no span (cabinets, the first segment of a route)."""


def device_map(title: str, pos: tuple[int, int, int, int], view: Json, where: str) -> Json:
    """A map of devices coloured by their worst open alert, cable routes drawn as lines.

    Two layers over one frame (Grafana 11.3 geomap; a layer draws the first frame it gets,
    so the three queries are joined into one frame first): the routes, each a chain of
    spans (one per segment, from the segment before it; ``cable_span``) drawn as lines
    and coloured by the worst open alert of the segment they lead to; over them the
    cabinets and segments as markers. The lines layer is a markers layer whose geometry is
    the spatial transformation's line field (``location`` auto: the frame's geo field; a
    circle marker's stroke draws a line), since the route layer draws a single line
    through its first frame and so one route only. A device's tooltip names its route and
    links to the route board."""
    layers: list[Json] = [
        {
            "type": "markers",
            "name": "Cable routes",
            "location": {"mode": "auto"},
            "tooltip": True,
            "config": {
                "showLegend": False,
                "style": {
                    "size": {"fixed": 1},
                    "color": {"field": "level", "fixed": NO_ALERT[1]},
                    "opacity": 0.9,
                    "lineWidth": 4,
                    "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
                },
            },
        },
        {
            "type": "markers",
            "name": "Devices",
            "location": {"mode": "coords", "latitude": "lat", "longitude": "lon"},
            "tooltip": True,
            "config": {
                "showLegend": True,
                "style": {
                    "size": {"fixed": 6},
                    "color": {"field": "level", "fixed": NO_ALERT[1]},
                    "opacity": 0.85,
                    "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
                },
            },
        },
    ]
    return panel(
        "geomap",
        title,
        [
            target(positions_query(where), "A", fmt="table"),
            target(worst_alert_query(where), "B", fmt="table"),
            target(spans_query(where), "C", fmt="table"),
        ],
        pos,
        description=(
            "Every cabinet and cable segment at its place, and every cable route as a line "
            "through its segments, coloured by the worst open alert (of the device; a "
            "route's span by the segment it leads to): red critical, orange major, yellow "
            "minor, blue warning, purple offline, green none. Click a device for its "
            "cabinet, route or ward board."
        ),
        options={
            "view": view,
            "controls": {"showZoom": True, "mouseWheelZoom": True, "showScale": True},
            "basemap": {"type": "default", "name": "Basemap"},
            "layers": layers,
            "tooltip": {"mode": "details"},
        },
        overrides=[
            override("level", *level_field_config().items()),
            override("device", ("links", [CABINET_LINK, ROUTE_LINK, WARD_LINK])),
            override("ward", ("mappings", [ward_names_mapping()])),
        ],
        transformations=[*JOIN_POSITIONS_AND_ALERTS, SPAN_LINES],
    )


def route_map(pos: tuple[int, int, int, int], where: str) -> Json:
    """The selected cable route drawn as a line through its segments in position order.

    Grafana 11.3's route layer draws one line through the first frame it gets
    (``routeLayer.tsx``: "Only the first frame for now!"), and the query gives one frame
    per route, so this draws the first selected route (a map link selects exactly one).
    A city-wide line per route would need the network layer's edge frame (source,
    target), which InfluxQL cannot build: the city and ward maps show a route as its
    chain of segments instead."""
    query = (
        'SELECT "device", "position", "street", "lat", "lon" FROM (SELECT last("lat") AS '
        '"lat", last("lon") AS "lon", last("position") AS "position", last("street") AS '
        f'"street" FROM "device_status" WHERE "kind" = \'cable_segment\' AND {where} '
        'GROUP BY "route", "device") GROUP BY "route"'
    )
    location = {"mode": "coords", "latitude": "lat", "longitude": "lon"}
    layers = [
        {
            "type": "route",
            "name": "Route",
            "location": location,
            "tooltip": False,
            "config": {
                "style": {"color": {"fixed": "blue"}, "opacity": 0.8, "lineWidth": 3},
                "arrow": 1,
            },
        },
        {
            "type": "markers",
            "name": "Segments",
            "location": location,
            "tooltip": True,
            "config": {
                "showLegend": False,
                "style": {
                    "size": {"fixed": 6},
                    "color": {"fixed": "blue"},
                    "opacity": 1,
                    "symbol": {"mode": "fixed", "fixed": "img/icons/marker/square.svg"},
                    "text": {"mode": "field", "field": "position"},
                    "textConfig": {"fontSize": 10, "offsetY": -10},
                },
            },
        },
    ]
    return panel(
        "geomap",
        "Route on the map (first selected route, segments in order from the exchange)",
        [target(query, fmt="table")],
        pos,
        options={
            "view": {"id": "fit", "allLayers": True, "padding": 10, "zoom": 15},
            "controls": {"showZoom": True, "mouseWheelZoom": True, "showScale": True},
            "basemap": {"type": "default", "name": "Basemap"},
            "layers": layers,
            "tooltip": {"mode": "details"},
        },
        transformations=[
            {"id": "sortBy", "options": {"fields": {}, "sort": [{"field": "position"}]}},
        ],
    )


def wards_table(pos: tuple[int, int, int, int]) -> Json:
    """Wards with open alerts: how many devices, the worst; each links to its ward board."""
    query = (
        'SELECT count("level") AS "devices with open alerts", max("level") AS "worst" '
        f'FROM ({worst_alert_by_device()}) GROUP BY "ward"'
    )
    return panel(
        "table",
        "Wards with open alerts (click for the ward board)",
        [target(query, fmt="table")],
        pos,
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True}}},
            {"id": "sortBy", "options": {"sort": [{"field": "worst", "desc": True}]}},
        ],
        overrides=[
            override("ward", ("mappings", [ward_names_mapping()]), ("links", [WARD_LINK])),
            override(
                "worst",
                *level_field_config().items(),
                ("custom.cellOptions", {"type": "color-background"}),
            ),
        ],
    )


def city_overview() -> Json:
    panels = [
        device_map(
            "Cabinets and cable routes by worst open alert",
            (0, 0, 14, 16),
            {"id": "coords", "lat": 21.03, "lon": 105.85, "zoom": 11},
            WARD_FILTER,
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
            overrides=[
                override("ward", ("mappings", [ward_names_mapping()]), ("links", [WARD_LINK]))
            ],
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
            (0, 16, 12, 8),
            transformations=[{"id": "merge", "options": {}}],
            overrides=[
                override("ward", ("mappings", [ward_names_mapping()]), ("links", [WARD_LINK]))
            ],
        ),
        wards_table((12, 16, 12, 8)),
    ]
    return dashboard("cw-city", "citywatch · City overview", panels, [ward_variable()])


def ward_board() -> Json:
    """One ward (or a few): its map, its devices by worst open alert with links to the
    cabinet and route boards, its alerts."""
    devices = panel(
        "table",
        "Devices by worst open alert (click a cabinet or a route)",
        [
            target(positions_query(), "A", fmt="table"),
            target(worst_alert_query(), "B", fmt="table"),
        ],
        (14, 0, 10, 16),
        transformations=[
            *JOIN_POSITIONS_AND_ALERTS,
            {"id": "sortBy", "options": {"sort": [{"field": "level", "desc": True}]}},
        ],
        overrides=[
            override(
                "level",
                *level_field_config().items(),
                ("displayName", "worst open alert"),
                ("custom.cellOptions", {"type": "color-background"}),
            ),
            override("device", ("links", [CABINET_LINK])),
            override("route", ("links", [ROUTE_LINK])),
            override("ward", ("mappings", [ward_names_mapping()])),
            override("lat", ("custom.hidden", True)),
            override("lon", ("custom.hidden", True)),
        ],
    )
    latest = (
        'SELECT last("explanation") AS "explanation", last("alert_id") AS "alert" '
        'FROM "citywatch_alert" '
        f'WHERE {WARD_FILTER} AND $timeFilter GROUP BY "ward", "device", "type", "state"'
    )
    panels = [
        device_map(
            "Map", (0, 0, 14, 16), {"id": "fit", "allLayers": True, "padding": 5}, WARD_FILTER
        ),
        devices,
        panel(
            "table",
            "Alerts in range (latest per device, type and state)",
            [target(latest, fmt="table")],
            (0, 16, 14, 9),
            transformations=[{"id": "merge", "options": {}}],
            overrides=[
                override("ward", ("mappings", [ward_names_mapping()])),
                override("device", ("links", [CABINET_LINK])),
            ],
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
            (14, 16, 10, 9),
        ),
    ]
    board = dashboard("cw-ward", "citywatch · Ward", panels, [ward_variable()])
    board["annotations"]["list"] += alert_annotations(WARD_FILTER)
    return board


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
    board["annotations"]["list"] += alert_annotations(f"{WARD_FILTER} AND {DEVICE_FILTER}")
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
        route_map((0, 26, 24, 12), f'{WARD_FILTER} AND "route" =~ /^$route$/'),
    ]
    route = variable(
        "route",
        f'SHOW TAG VALUES FROM "cable_segment" WITH KEY = "route" WHERE {WARD_FILTER}',
        "Route",
    )
    board = dashboard("cw-cables", "citywatch · Cable routes", panels, [ward_variable(), route])
    # The ward's alert marks: alerts carry no ``route`` tag to narrow them to a route.
    board["annotations"]["list"] += alert_annotations(WARD_FILTER)
    return board


def alerts_board() -> Json:
    latest = (
        'SELECT last("state") AS "state", last("severity") AS "severity", '
        'last("explanation") AS "explanation", last("acknowledged") AS "acknowledged", '
        'last("alert_id") AS "alert", last("incident") AS "incident", '
        'last("incident_root") AS "incident_root" FROM "citywatch_alert" '
        f'WHERE {WARD_FILTER} AND $timeFilter GROUP BY "ward", "device", "type"'
    )
    panels = [
        panel(
            "table",
            "Alerts (latest state per device and type; incident: the one grouping, and "
            "inhibiting, the alert unless it is its root)",
            [target(latest, fmt="table")],
            (0, 0, 24, 10),
            transformations=[{"id": "merge", "options": {}}],
            overrides=[
                override("ward", ("mappings", [ward_names_mapping()]), ("links", [WARD_LINK])),
                override("device", ("links", [CABINET_LINK])),
            ],
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
    board["annotations"]["list"] += alert_annotations(WARD_FILTER)
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
    "ward.json": ward_board,
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
