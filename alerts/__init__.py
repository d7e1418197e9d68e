"""citywatch alerts: detections become alerts with a lifecycle, a store, and notifiers.

Layers (import only what you need; this package imports ``telemetry`` and
``anomaly.events`` only):

- :mod:`alerts.model` — value types, each declared once (the store's row mapping and the
  API's alert schema are derived from them). ``Alert`` (what the API serves: id, type,
  ward, device, metric, severity, state ``pending|active|cleared``, … — see the class),
  ``AlertChange`` (one timeline entry / change-feed event: id, alert_id,
  kind, at_ms, detail, actor, notify, ward, alert), ``AlertDetail`` (alert + timeline +
  comments), ``Incident`` (+ children ids), ``Silence``, ``ApiKey`` (id, name, role
  ``noc|crew|admin``, wards), ``Delivery``. All times are epoch milliseconds.
- :mod:`alerts.lifecycle` — the pure state machine (no I/O, time passed in);
  :mod:`alerts.policy` — its settings (pending, keep-firing, raise/clear scores per type,
  flapping window, escalation, reminders); :mod:`alerts.correlation` — incident scopes
  and the ``DeviceDirectory`` callable (device id → ``DeviceLocation(ward, route,
  position)`` or ``None``; ``directory_of(device_infos)`` builds one from ``DeviceInfo``).
  Alert key: (device, type, metric) — metric only for metric-level rules (limit,
  baseline, …), empty for device-level ones; area alerts (area_outage) key on the ward.
- :mod:`alerts.store` — ``AlertStore`` (SQLAlchemy async; SQLite WAL or PostgreSQL)::

      store = await AlertStore.open("sqlite+aiosqlite:///var/citywatch/alerts.db",
                                    policy=Policy(), directory=lookup)  # migrates to head
      changes = await store.apply_detections(detections)   # -> list[AlertChange]
      changes = await store.tick()                         # call every few seconds
      await store.acknowledge(alert_id, actor) / unacknowledge / assign(id, crew|None,
            actor) / comment(id, text, actor) / resolve(id, actor, note)
      page = await store.list_alerts(AlertFilter(state=..., severity=..., ward=...,
            wards=[...], device=..., type=..., since=..., until=...), skip, limit,
            sort=Sort.parse("-raised_at,severity", ALERT_SORTS))
      # page.data: list[Alert], page.count: total matches
      detail = await store.get_alert(alert_id)             # NotFoundError if absent
      await store.list_incidents(open_only=, ward=, wards=, skip=, limit=)
      await store.get_incident(id)
      await store.create_silence(starts_at=, ends_at=, ward=, device=, type=, severity=,
            matchers=[SilenceMatcher(name, MatchOp, value)], comment=, created_by=,
            created_by_key=) / get_silence / list_silences(active_at=, sort=) / delete_silence
      api_key, secret = await store.create_api_key(role, wards, name)
      await store.verify_api_key(secret) -> ApiKey | None ; list_api_keys ; revoke_api_key
      await store.changes_since(last_event_id, wards=None, limit=500)  # SSE resume
      await store.last_change_id()
      await store.feed_since(cursor, limit=500)  # with the alert as each change left it
      await store.open_cursor(consumer) / advance_cursor(consumer, id, deliveries) / cursors()
      await store.record_delivery(...) / list_deliveries(alert_id=, skip=, limit=)
      await store.open_alerts_by_device(wards, device=None)  # counts, offline devices
      await store.ping() ; await store.close()

  Errors: ``NotFoundError`` (404), ``lifecycle.TransitionError`` (409: e.g. already
  acknowledged), ``ValueError`` (422: bad paging, silence or key arguments).
  Every write returns the ``AlertChange`` list it caused, with ids and the alert after
  the change, and stores them in the change feed.
- :mod:`alerts.feed` — ``FeedFollower(store, consumer, handler)``: one consumer of the
  change feed with a durable cursor (at least once; first start at the head).
- :mod:`alerts.notify` — ``WebhookNotifier`` (HMAC ``X-Citywatch-Signature: sha256=<hex>``,
  ``Idempotency-Key: citywatch-<change id>``), ``MqttNotifier`` (``cw/v1/_alerts/{ward}``,
  QoS 1), ``notify_follower(store, notifier)`` (a notifier as a feed consumer, logging
  its deliveries), ``Dispatcher`` (send given changes once, logged).
- :mod:`alerts.influx` — ``alert_lines(changes)``: line protocol for measurement
  ``citywatch_alert`` (the wiring posts it to InfluxDB ``/write``, ns precision).

Wiring (citywatch/): build the store in the service's startup, call
``store.apply_detections(batch)`` for each detector output and ``store.tick()`` every few
seconds; run a ``FeedFollower`` posting ``alert_lines(changes)`` to InfluxDB and a
``notify_follower`` per notifier (poke them after a write). The API uses the same store;
its SSE stream reads the change feed (``store.changes_since(last_id)``) with the client's
own cursor, so it resumes from any event id.
Import ``AlertType``/``AlertSeverity`` from ``alerts.model`` (api may not import anomaly
directly).
"""
