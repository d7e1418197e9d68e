"""The routing file and the receivers' pure state: validation with file/path/field
messages, matchers, the route tree with ``continue``, quiet hours on a fixed clock,
grouping and its intervals, repeats, the rate limit, and the message texts."""

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from channel_helpers import ENV, change

from alerts.model import ChangeKind
from alerts.notify.message import HANOI, MAX_GROUP_LINES, render, render_group
from alerts.notify.routed import Grouper, TokenBucket
from alerts.notify.routing import (
    Matcher,
    Routes,
    RoutesError,
    labels_of,
    load_routes,
    parse_duration,
    parse_routes,
)
from alerts.notify.telegram import MAX_TEXT, telegram_html
from anomaly.events import DetectionKind, Severity

EXAMPLE = Path(__file__).parents[2] / "deploy" / "routes.example.yaml"
EXAMPLE_ENV = {
    "CITYWATCH_SMTP_PASSWORD": "x",
    "CITYWATCH_TELEGRAM_TOKEN": "1:a",
    "CITYWATCH_ZALO_OA_TOKEN": "z",
}


def base(**route: Any) -> dict[str, Any]:
    return {
        "receivers": [
            {"name": "noc", "email": {"host": "smtp.x", "from": "cw@x.vn", "to": ["noc@x.vn"]}},
            {"name": "tg", "telegram": {"token": "${CW_TG_TOKEN}", "chat_ids": [-100]}},
            {"name": "zl", "zalo": {"access_token": "${CW_ZALO_TOKEN}", "user_ids": ["42"]}},
        ],
        "quiet_hours": {"night": [{"times": ["22:00-06:00"]}]},
        "route": {"receiver": "noc", **route},
    }


def routes(**route: Any) -> Routes:
    return parse_routes(base(**route), source="routes.yaml", env=ENV)


def errors_of(data: dict[str, Any], env: dict[str, str] = ENV) -> str:
    with pytest.raises(RoutesError) as caught:
        parse_routes(data, source="routes.yaml", env=env)
    return str(caught.value)


def hanoi(hour: int, minute: int = 0, day: int = 16) -> float:
    """Seconds since the epoch at ``hour:minute`` Hanoi time on June ``day`` 2025
    (the 16th is a Monday)."""
    return datetime(2025, 6, day, hour, minute, tzinfo=HANOI).timestamp()


# ----------------------------------------------------------------------------- the file


def test_the_example_file_is_valid() -> None:
    example = load_routes(EXAMPLE, env=EXAMPLE_ENV)
    assert set(example.receivers) == {
        "noc-email",
        "crew-hoang-mai-telegram",
        "crew-hoang-mai-zalo",
        "crew-thanh-xuan-telegram",
    }
    crew = example.root.routes[0]
    assert (crew.receiver, crew.continue_, crew.group_by) == (
        "crew-hoang-mai-telegram",
        True,
        ("ward", "type"),
    )
    assert (crew.group_wait_s, crew.group_interval_s, crew.repeat_interval_s) == (10, 60, 4 * 3600)
    assert example.receivers["crew-hoang-mai-telegram"].telegram.token == "1:a"  # type: ignore[union-attr]


def test_the_readme_example_is_valid() -> None:
    readme = (EXAMPLE.parents[1] / "README.md").read_text()
    section = readme[readme.index("### Telegram, Zalo and e-mail") :]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    env = {
        "CITYWATCH_TELEGRAM_TOKEN": "1:a",
        "CITYWATCH_ZALO_OA_TOKEN": "z",
        "CITYWATCH_SMTP_PASSWORD": "p",
    }
    tree = parse_routes(yaml.safe_load(block), source="README.md", env=env)
    critical_hm = change(1, ward="phuong_dinh_cong", severity=Severity.CRITICAL)
    assert [r.receiver for r in tree.match(critical_hm)] == [
        "crew-hoang-mai",
        "crew-hoang-mai-zalo",
    ]


def test_the_example_file_names_every_secret_by_reference() -> None:
    text = EXAMPLE.read_text()
    for field in ("token:", "access_token:", "password:"):
        for line in text.splitlines():
            if line.strip().startswith(field):
                assert "${" in line, line


def test_errors_name_the_file_the_path_and_the_field() -> None:
    data = base(routes=[{"matchers": ['zone="x"', 'ward=~"("'], "group_wait": "10 minutes"}])
    data["receivers"][1]["telegram"]["token"] = "123456:literal"
    data["receivers"][0]["email"]["port"] = "smtp"
    data["route"]["surprise"] = 1
    message = errors_of(data)
    assert set(message.splitlines()) == {
        "routes.yaml: receivers[0].email.port: Input should be a valid integer, "
        "unable to parse string as an integer",
        "routes.yaml: receivers[1].telegram.token: a secret is never written in the routing "
        "file: give an environment reference such as ${CITYWATCH_TELEGRAM_TOKEN}",
        "routes.yaml: route.surprise: Extra inputs are not permitted",
        "routes.yaml: route.routes[0].matchers[0]: unknown label 'zone' "
        "(one of ward, severity, type, device, metric, kind)",
        "routes.yaml: route.routes[0].matchers[1]: bad regular expression '(': "
        "missing ), unterminated subpattern at position 0",
        "routes.yaml: route.routes[0].group_wait: '10 minutes' is not a duration such as "
        "30s, 5m, 4h or 1h30m",
    }


def test_names_that_lead_nowhere_are_refused() -> None:
    data = base(routes=[{"receiver": "nobody", "quiet_hours": ["nite"]}])
    data["receivers"].append(dict(data["receivers"][1]))
    assert errors_of(data).splitlines() == [
        "routes.yaml: receivers[3].name: 'tg' is defined twice",
        "routes.yaml: route.routes[0].receiver: no receiver named 'nobody' "
        "(receivers: noc, tg, zl)",
        "routes.yaml: route.routes[0].quiet_hours: no quiet_hours named 'nite' (night)",
    ]


def test_a_missing_secret_and_a_receiver_with_two_channels() -> None:
    message = errors_of(base(), env={})
    assert "receivers[1].telegram.token: environment variable CW_TG_TOKEN is not set" in message
    data = base()
    data["receivers"][2]["telegram"] = {"token": "${CW_TG_TOKEN}", "chat_ids": ["1"]}
    message = errors_of(data)
    assert "receivers[2]: a receiver has exactly one channel: telegram, zalo or email " in message


def test_quiet_ranges_and_the_root_are_checked() -> None:
    data = base()
    data["quiet_hours"]["bad"] = [{"times": ["25:00-06:00"]}, {"times": ["08:00-08:00"]}]
    message = errors_of(data)
    assert "quiet_hours.bad[0].times: '25:00-06:00' is not a time range" in message
    assert "quiet_hours.bad[1].times: '08:00-08:00' is empty" in message
    data = base(matchers=['ward="x"'])
    del data["route"]["receiver"]
    message = errors_of(data)
    assert "route.matchers: the root route matches everything; it takes no matchers" in message
    assert "route.receiver: the root route needs a receiver" in message


def test_an_unreadable_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(RoutesError, match="cannot read"):
        load_routes(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("route: [unclosed\n")
    with pytest.raises(RoutesError, match=r"bad.yaml: not valid YAML \(line 2"):
        load_routes(bad)
    bad.write_text("- a list\n")
    with pytest.raises(RoutesError, match="expected a mapping"):
        load_routes(bad)


def test_durations() -> None:
    assert [parse_duration(v) for v in ("0s", "30s", "5m", "4h", "1d", "1h30m", 12)] == [
        0,
        30,
        300,
        4 * 3600,
        86400,
        5400,
        12,
    ]
    for bad in ("", "5", "5 m", "-1s", "1m1h"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)


def test_secrets_do_not_show_in_repr() -> None:
    tg = routes().receivers["tg"].telegram
    assert tg is not None
    assert tg.token == ENV["CW_TG_TOKEN"]
    assert ENV["CW_TG_TOKEN"] not in repr(tg)


# ----------------------------------------------------------------------------- matching


def test_matchers_exact_and_regex() -> None:
    labels = labels_of(change(1, ward="phuong_dinh_cong", severity=Severity.CRITICAL))
    assert Matcher.parse('severity="critical"').matches(labels)
    assert not Matcher.parse('severity!="critical"').matches(labels)
    assert Matcher.parse('ward=~"phuong_(dinh_cong|hoang_mai)"').matches(labels)
    assert not Matcher.parse('ward=~"dinh"').matches(labels)  # the whole value
    assert Matcher.parse('ward!~"xa_.*"').matches(labels)
    assert Matcher.parse('type = "flooding"').matches(labels)
    assert Matcher.parse('device=""').matches(labels_of(change(2, device="")))
    assert Matcher.parse(r'kind="raised"').matches(labels)
    with pytest.raises(ValueError, match="not a matcher"):
        Matcher.parse("severity=critical")


def test_the_first_matching_child_takes_a_change_unless_it_continues() -> None:
    tree = routes(
        routes=[
            {"matchers": ['ward="phuong_hoang_mai"'], "receiver": "tg", "continue": True},
            {"matchers": ['severity="critical"'], "receiver": "zl"},
            {"matchers": ['ward="phuong_hoang_mai"'], "receiver": "noc"},
        ]
    )
    critical_hm = change(1, severity=Severity.CRITICAL)
    assert [r.receiver for r in tree.match(critical_hm)] == ["tg", "zl"]  # zl stops the walk
    minor_hm = change(2, severity=Severity.MINOR)
    assert [r.receiver for r in tree.match(minor_hm)] == ["tg", "noc"]
    elsewhere = change(3, ward="phuong_ba_dinh", severity=Severity.MINOR)
    assert [r.path for r in tree.match(elsewhere)] == ["route"]  # no child: the root


def test_nested_routes_inherit_and_a_receiver_gets_a_change_once() -> None:
    tree = routes(
        group_wait="1m",
        quiet_hours=["night"],
        routes=[
            {
                "matchers": ['ward=~"phuong_.*"'],
                "receiver": "tg",
                "continue": True,
                "routes": [{"matchers": ['type="flooding"'], "group_by": ["device"]}],
            },
            {"matchers": ['type="flooding"'], "receiver": "tg"},
        ],
    )
    (only,) = tree.match(change(1))
    assert only.path == "route.routes[0].routes[0]"
    assert (only.receiver, only.group_wait_s, only.group_by) == ("tg", 60, ("device",))
    assert len(only.quiet) == 1


# ----------------------------------------------------------------------------- quiet hours


def test_quiet_hours_let_only_critical_changes_through() -> None:
    tree = routes(quiet_hours=["night"])
    root = tree.root
    major, critical = labels_of(change(1)), labels_of(change(2, severity=Severity.CRITICAL))
    late = datetime.fromtimestamp(hanoi(23, 30), HANOI)
    early = datetime.fromtimestamp(hanoi(5, 59), HANOI)
    day = datetime.fromtimestamp(hanoi(6, 0), HANOI)
    assert root.is_quiet(late, major)
    assert root.is_quiet(early, major)
    assert not root.is_quiet(day, major)
    assert not root.is_quiet(late, critical)


def test_quiet_hours_on_weekdays_wrap_past_midnight() -> None:
    data = base(quiet_hours=["weekend"], quiet_min_severity="major")
    data["quiet_hours"]["weekend"] = [{"times": ["20:00-07:00"], "weekdays": ["sat"]}]
    root = parse_routes(data, env=ENV).root
    minor, major = labels_of(change(1, severity=Severity.MINOR)), labels_of(change(2))

    def at(day: int, hour: int) -> datetime:
        return datetime.fromtimestamp(hanoi(hour, day=day), HANOI)

    assert root.is_quiet(at(21, 21), minor)  # Saturday evening
    assert root.is_quiet(at(22, 6), minor)  # Sunday morning: the range began on Saturday
    assert not root.is_quiet(at(22, 21), minor)  # Sunday evening
    assert not root.is_quiet(at(20, 23), minor)  # Friday night
    assert not root.is_quiet(at(21, 21), major)


def test_a_grouper_mutes_non_critical_changes_in_quiet_hours() -> None:
    tree = routes(quiet_hours=["night"], group_wait="0s")
    grouper = Grouper("noc")
    assert not grouper.add(change(1), tree.root, hanoi(23))
    assert grouper.add(change(2, severity=Severity.CRITICAL), tree.root, hanoi(23))
    assert grouper.add(change(3), tree.root, hanoi(12))
    assert grouper.muted == 1


# ----------------------------------------------------------------------------- grouping


def test_changes_of_a_group_within_group_wait_go_as_one() -> None:
    tree = routes(group_by=["ward"], group_wait="30s", group_interval="5m")
    grouper, t0 = Grouper("noc"), 1_000.0
    grouper.add(change(1), tree.root, t0)
    grouper.add(change(2, device="cab_2"), tree.root, t0 + 10)
    grouper.add(change(3, ward="phuong_ba_dinh"), tree.root, t0 + 20)
    assert grouper.due(t0 + 29) == []
    assert grouper.oldest() == 1
    (hm,) = grouper.due(t0 + 30)
    assert [c.id for c in grouper.start(hm, 1).changes] == [1, 2]
    grouper.sent(hm, t0 + 30)
    assert grouper.oldest() == 3
    (bd,) = grouper.due(t0 + 50)
    assert bd.key == ("route", "ward=phuong_ba_dinh")


def test_after_a_message_a_group_waits_its_group_interval() -> None:
    tree = routes(group_wait="10s", group_interval="2m")
    grouper, t0 = Grouper("noc"), 0.0
    grouper.add(change(1), tree.root, t0)
    (group,) = grouper.due(t0 + 10)
    grouper.start(group, 1)
    grouper.add(change(2), tree.root, t0 + 11)  # arrives while the first is on its way
    grouper.sent(group, t0 + 12)
    assert grouper.due(t0 + 100) == []
    assert grouper.due(t0 + 100, everything=True) == [group]  # the last round before a stop
    (again,) = grouper.due(t0 + 132)
    assert [c.id for c in grouper.start(again, 1).changes] == [2]


def test_group_by_all_labels_keeps_each_alert_apart() -> None:
    tree = routes(group_by=["..."], group_wait="0s")
    grouper = Grouper("noc")
    grouper.add(change(1, alert_id=7), tree.root, 0)
    grouper.add(change(2, alert_id=8), tree.root, 0)
    grouper.add(change(3, alert_id=7, kind=ChangeKind.ACKNOWLEDGED), tree.root, 0)
    assert sorted(len(g.pending) for g in grouper.due(0)) == [1, 2]


def test_a_failed_message_stays_due_and_holds_the_cursor() -> None:
    tree = routes(group_wait="0s")
    grouper = Grouper("noc")
    grouper.add(change(5), tree.root, 0)
    (group,) = grouper.due(0)
    grouper.start(group, 2)
    assert grouper.due(1) == [group]
    assert grouper.oldest() == 5


def test_reminders_no_more_often_than_repeat_interval() -> None:
    tree = routes(group_wait="0s", group_interval="0s", repeat_interval="1h")
    grouper = Grouper("noc")
    grouper.add(change(1, alert_id=9), tree.root, 0)
    (group,) = grouper.due(0)
    grouper.start(group, 1)
    grouper.sent(group, 0)
    reminder = change(2, alert_id=9, kind=ChangeKind.REMINDER)
    assert not grouper.add(reminder, tree.root, 1800)
    assert grouper.add(change(3, alert_id=9, kind=ChangeKind.REMINDER), tree.root, 3600)
    assert not grouper.add(change(4, alert_id=9, kind=ChangeKind.REMINDER), tree.root, 3601)
    assert grouper.repeats_dropped == 2
    # Other changes of the alert are never held back by the repeat interval.
    assert grouper.add(change(5, alert_id=9, kind=ChangeKind.ACKNOWLEDGED), tree.root, 3602)


def test_the_rate_limit_is_a_token_bucket() -> None:
    bucket = TokenBucket(capacity=3, per_s=60)
    assert [bucket.take(0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(19)
    assert bucket.take(20)  # one token every 20 s
    assert not bucket.take(20)
    assert [bucket.take(1000) for _ in range(4)] == [True, True, True, False]  # capped


def test_a_receivers_rate_limit_defaults_per_channel() -> None:
    data = base()
    data["receivers"][1]["rate_limit"] = {"messages": 5, "per": "10s"}
    tree = parse_routes(data, env=ENV)
    assert (tree.receivers["tg"].limit.messages, tree.receivers["tg"].limit.per) == (5, 10)
    assert tree.receivers["zl"].limit.messages == 20


# ----------------------------------------------------------------------------- texts


def test_one_change_reads_on_a_phone() -> None:
    names = {"phuong_hoang_mai": "Phường Hoàng Mai"}
    message = render(change(1, severity=Severity.CRITICAL), names.__getitem__, "en")
    assert message.subject == "NEW: Water inside (critical) — Phường Hoàng Mai"
    lines = message.text.splitlines()
    assert lines[0] == "Phường Hoàng Mai · cab_1"
    assert lines[1] == "Water has got in: check the cabinet or the duct."
    assert lines[2] == "Detector: water 120 mm above the plinth"
    assert lines[-1].endswith("· alert #1")
    assert all(len(line) < 80 for line in lines)


def test_a_group_message_lists_the_most_severe_first_and_counts_the_rest() -> None:
    changes = [change(i, device=f"cab_{i}", severity=Severity.MINOR) for i in range(1, 20)]
    changes.append(change(20, type=DetectionKind.CABLE_CUT, severity=Severity.CRITICAL))
    changes.append(change(21, kind=ChangeKind.CLEARED))
    message = render_group(changes, lang="en")
    assert message.subject == "21 alert changes — phuong_hoang_mai (20 new, 1 cleared)"
    lines = message.text.splitlines()
    assert lines[0] == "NEW: Cable cut (critical) cab_1 — phuong_hoang_mai"
    assert len(lines) == MAX_GROUP_LINES + 2
    assert lines[-2] == f"… and {21 - MAX_GROUP_LINES} more"


def test_telegram_html_escapes_and_fits() -> None:
    message = render(change(1, explanation="<script> & more"), lang="en")
    html = telegram_html(message)
    assert html.startswith("<b>NEW: Water inside (major)")
    assert "&lt;script&gt; &amp; more" in html
    big = telegram_html(render(change(1, explanation="&" * 5000), lang="en"))
    assert len(big) <= MAX_TEXT
    assert big.endswith("&amp;…")
