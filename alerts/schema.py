"""The store's tables (SQLAlchemy Core). Alembic migrations under ``alerts/migrations``
create exactly this schema; a test compares the two.

Times are epoch milliseconds in BIGINT columns: portable, and what the rest of citywatch
speaks. ``alerts.open_key`` is unique and NULL once the alert is cleared, so the database
itself refuses a second open alert for one key, whichever process writes.
``alerts.due_at`` is when the lifecycle's timers next concern an open alert
(:func:`alerts.lifecycle.next_due`; NULL: not until something else changes it).
"""

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("ward", sa.String(64), nullable=False),
    sa.Column("route", sa.String(64)),
    sa.Column("position", sa.Integer),
    sa.Column("device", sa.String(64)),
    sa.Column("root_alert_id", sa.BigInteger, nullable=False),
    sa.Column("opened_at", sa.BigInteger, nullable=False),
    sa.Column("closed_at", sa.BigInteger),
    sa.Column("title", sa.Text, nullable=False),
    sa.Index(None, "closed_at"),
    sa.Index(None, "ward"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("open_key", sa.String(200), unique=True),
    sa.Column("dedup_key", sa.String(200), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("ward", sa.String(64), nullable=False),
    sa.Column("device", sa.String(64), nullable=False),
    sa.Column("metric", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("acknowledged", sa.Boolean, nullable=False),
    sa.Column("acknowledged_by", sa.String(128)),
    sa.Column("acknowledged_at", sa.BigInteger),
    sa.Column("assignee", sa.String(128)),
    sa.Column("opened_at", sa.BigInteger, nullable=False),
    sa.Column("raised_at", sa.BigInteger),
    sa.Column("last_seen", sa.BigInteger, nullable=False),
    sa.Column("cleared_at", sa.BigInteger),
    sa.Column("started_at", sa.BigInteger, nullable=False),
    sa.Column("clear_pending_since", sa.BigInteger),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("peak_score", sa.Float, nullable=False),
    sa.Column("last_score", sa.Float, nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("value_metric", sa.String(64), nullable=False, server_default=""),
    sa.Column("reference", sa.Float),
    sa.Column("reference_kind", sa.String(16)),
    sa.Column("explanation", sa.Text, nullable=False),
    sa.Column("silenced", sa.Boolean, nullable=False),
    sa.Column("flapping", sa.Boolean, nullable=False),
    sa.Column("flap_changes", sa.JSON, nullable=False),
    sa.Column("escalated_at", sa.BigInteger),
    sa.Column("last_notified_at", sa.BigInteger),
    sa.Column("incident_id", sa.BigInteger, sa.ForeignKey("incidents.id")),
    sa.Column("incident_root", sa.Boolean, nullable=False),
    sa.Column("due_at", sa.BigInteger),
    sa.Index(None, "dedup_key", "opened_at"),
    sa.Index(None, "state"),
    sa.Index(None, "ward", "opened_at"),
    sa.Index(None, "device"),
    sa.Index(None, "opened_at"),
    sa.Index(None, "incident_id"),
    sa.Index(None, "due_at"),
)

alert_events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.BigInteger, sa.ForeignKey("alerts.id"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("actor", sa.String(128)),
    sa.Column("notify", sa.Boolean, nullable=False),
    sa.Column("ward", sa.String(64), nullable=False),
    sa.Column("snapshot", sa.JSON),
    sa.Index(None, "alert_id"),
    sa.Index(None, "ward", "id"),
)
"""The change feed (an outbox): one row per transition, ids in commit order (see
:mod:`alerts.store`). ``snapshot`` is the alert as that change's transaction left it, so a
consumer that repeats a change after a crash sends what it would have sent the first time
(NULL in rows written before migration 0003)."""

comments = sa.Table(
    "comments",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.BigInteger, sa.ForeignKey("alerts.id"), nullable=False),
    sa.Column("author", sa.String(128), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Index(None, "alert_id"),
)

silences = sa.Table(
    "silences",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("starts_at", sa.BigInteger, nullable=False),
    sa.Column("ends_at", sa.BigInteger, nullable=False),
    sa.Column("ward", sa.String(64)),
    sa.Column("device", sa.String(64)),
    sa.Column("type", sa.String(32)),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("severity", sa.String(16)),
    sa.Column("matchers", sa.JSON, nullable=False, server_default="[]"),
    sa.Column("created_by_key", sa.String(32), nullable=False, server_default=""),
    sa.Index(None, "ends_at"),
)
"""Maintenance windows. ``matchers`` holds the silence's Alertmanager-style matchers as a
JSON list of ``{"name", "op", "value"}``; ``created_by_key`` the id of the key that made it
(empty in rows written before migration 0005)."""

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("wards", sa.JSON, nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger),
    sa.Column("lang", sa.String(8)),
)
"""``lang`` is the language the key's holder reads (``vi``/``en``; NULL: not chosen, and in
rows written before migration 0007)."""

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("change_id", sa.BigInteger, nullable=False),
    sa.Column("alert_id", sa.BigInteger, nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Index(None, "alert_id"),
    sa.Index(None, "change_id", "channel", "target", unique=True),
)
"""The delivery log, in the spirit of Alertmanager's notification log: one row per
(change, channel, target), so a delivery repeated after a crash updates its row (attempts
add up) instead of logging twice."""

feed_cursors = sa.Table(
    "feed_cursors",
    metadata,
    sa.Column("consumer", sa.String(255), primary_key=True),
    sa.Column("change_id", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)
"""How far each consumer of the change feed (``export:influx:…``, ``notify:webhook:…``)
has durably got: every change with an id up to ``change_id`` is done."""

action_keys = sa.Table(
    "action_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), primary_key=True),
    sa.Column("request", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("response", sa.JSON),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index(None, "created_at"),
)
"""``Idempotency-Key`` of the alert actions, per API key (``key_id``): ``request`` is a
digest of what was asked (so a key reused for another request is refused), ``status`` and
``response`` the first answer, NULL while that request is in progress. Rows older than a
day are pruned when a new key is claimed."""
