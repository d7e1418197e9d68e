"""The citywatch HTTP API (FastAPI): alerts, incidents, silences, devices, SSE, crew page.

``create_app(settings, store=None)`` builds the app (nothing at import time; the lifespan
opens the store, the InfluxDB client and the change-feed watcher); ``ApiSettings`` reads
``CITYWATCH_*``. Serve it with ``citywatch api --store URL --influx URL --port N``.

Interface notes:

- Auth: ``Authorization: Bearer <key>`` (``citywatch keys create``). ``noc`` reads and acts
  on everything; ``crew`` reads and acts (acknowledge, comment, resolve, assign *itself*)
  in its wards only — anything elsewhere answers **404** exactly like a missing id, so a
  crew cannot probe other wards; ``admin`` manages keys (``/keys``) and silences, and may
  read. A role that may not do something gets 403; no or a bad key gets 401. Errors are
  ``{"detail": "..."}`` (validation errors: FastAPI's list of ``{loc, msg, type}``).
- Lists answer ``{"data": [...], "count": N}`` with ``skip``/``limit`` (limit ≤ 1000).
  ``GET /alerts`` filters: ``state``, ``severity``, ``ward``, ``device``, ``type``,
  ``acknowledged``, ``incident``, ``from``/``to`` (``opened_at``, epoch ms).
- Live push: ``GET /alerts/stream`` (SSE; ``?ward=`` repeatable). The first event is
  ``ready`` (its id is where the stream starts); then ``change`` events whose id is the
  store's change-feed id and whose data is the change with the alert after it. Resume
  with the ``Last-Event-ID`` header (or ``?last_event_id=``). Browsers cannot send headers
  with ``EventSource``: they get a 60-second ticket from ``POST /stream/ticket`` and pass
  ``?ticket=`` (see :mod:`api.tickets`). The stream polls the store's feed head every
  ``feed_poll_s`` (works when the API runs apart from the pipeline); a writer in the same
  process may call ``app.state.services.feed.poke()`` after committing changes.
- Devices come from InfluxDB (see :mod:`api.devices` for the measurements it expects,
  including the ``device_status`` measurement that ingest should write from retained
  status messages).
- ``/health`` (liveness), ``/ready`` (store and InfluxDB; 503 when either is down),
  ``/metrics`` (Prometheus), ``/crew`` (the crew page), ``/docs`` (OpenAPI UI).
"""

from api.app import create_app
from api.settings import ApiSettings, Environment

__all__ = ["ApiSettings", "Environment", "create_app"]
