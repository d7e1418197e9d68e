"""The API service's settings: read from ``CITYWATCH_*`` environment variables or passed in.

Built inside the app's lifespan (or by the CLI), never at import time, so tests and the CLI
can hand in their own. Outside development a default secret is refused at start-up.
"""

from enum import StrEnum
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TICKET_SECRET = "change-me"  # refused outside development


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class ApiSettings(BaseSettings):
    """Where the store and InfluxDB are, and the service's own knobs."""

    model_config = SettingsConfigDict(env_prefix="CITYWATCH_", extra="ignore", frozen=True)

    environment: Environment = Environment.DEVELOPMENT
    store_url: str = Field(
        default="sqlite+aiosqlite:///citywatch.db",
        description="alert store URL (sqlite+aiosqlite:// or postgresql+asyncpg://)",
    )
    influx_url: str = Field(
        default="http://127.0.0.1:8086", description="InfluxDB v1 HTTP API base URL"
    )
    influx_database: str = Field(default="citywatch", min_length=1)
    influx_token: SecretStr | None = Field(
        default=None, description="sent as `Authorization: Token ...` (InfluxDB 2.x/3.x)"
    )
    influx_timeout_s: float = Field(default=5.0, gt=0)
    ticket_secret: SecretStr = Field(
        default=SecretStr(DEFAULT_TICKET_SECRET),
        description="HMAC key signing the short-lived SSE stream tickets",
    )
    ticket_ttl_s: int = Field(default=60, gt=0, le=3600)
    feed_poll_s: float = Field(
        default=0.5, gt=0, le=30, description="how often the SSE feed looks for new alert changes"
    )
    device_lookback_s: int = Field(
        default=7 * 24 * 3600, gt=0, description="devices silent for longer are not listed"
    )
    device_window_s: int = Field(
        default=3600, gt=0, description="default recent window of one device"
    )

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Self:
        if self.environment is not Environment.DEVELOPMENT:
            secret = self.ticket_secret.get_secret_value()
            if secret == DEFAULT_TICKET_SECRET or len(secret) < 16:
                raise ValueError(
                    "CITYWATCH_TICKET_SECRET must be set to a random value of at least 16 "
                    f"characters when CITYWATCH_ENVIRONMENT={self.environment.value}"
                )
        return self
