"""What the routes use, built once per app in the lifespan and kept on ``app.state``."""

from dataclasses import dataclass

from alerts.store import AlertStore
from api.devices import DeviceDirectory
from api.feed import ChangeFeed
from api.metrics import ApiMetrics
from api.settings import ApiSettings
from telemetry.influxdb import AsyncInfluxClient


@dataclass(frozen=True, slots=True)
class Services:
    settings: ApiSettings
    store: AlertStore
    influx: AsyncInfluxClient
    devices: DeviceDirectory
    feed: ChangeFeed
    metrics: ApiMetrics
