"""The API service's settings: read from ``CITYWATCH_*`` environment variables or passed in.

Built inside the app's lifespan (or by the CLI), never at import time, so tests and the CLI
can hand in their own. Secrets are never defaults: the ticket secret is refused when it is
a placeholder or short, required outside development, and random for the process when a
development service is given none (``citywatch run`` keeps one in its data folder).
"""

import secrets
from enum import StrEnum
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_PREFIXES = ("change-me", "changeme", "secret", "example")
"""Values a secret may not start with (the .env.example placeholders among them)."""


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class ApiSettings(BaseSettings):
    """Where the store and InfluxDB are, and the service's own knobs."""

    model_config = SettingsConfigDict(env_prefix="CITYWATCH_", extra="ignore", frozen=True)

    environment: Environment = Environment.DEVELOPMENT
    store_url: str = Field(
        default="sqlite+aiosqlite:///citywatch.db",
        description="alert store URL (sqlite:///PATH or postgresql://USER@HOST/DB)",
    )
    influx_url: str = Field(
        default="http://127.0.0.1:8086", description="InfluxDB v1 HTTP API base URL"
    )
    influx_database: str = Field(default="citywatch", min_length=1)
    influx_token: SecretStr | None = Field(
        default=None, description="sent as `Authorization: Token ...` (InfluxDB 2.x/3.x)"
    )
    influx_timeout_s: float = Field(default=5.0, gt=0)
    ticket_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key signing the short-lived SSE stream tickets (>= 16 random "
        "characters; several API replicas share one)",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token /metrics asks for; without one only loopback clients may read it",
    )
    ticket_ttl_s: int = Field(
        default=60, gt=0, le=300, description="a stream ticket's lifetime; longer ones are refused"
    )
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
        if self.ticket_secret is None:
            if self.environment is not Environment.DEVELOPMENT:
                raise ValueError(
                    "CITYWATCH_TICKET_SECRET must be set to a random value of at least 16 "
                    f"characters when CITYWATCH_ENVIRONMENT={self.environment.value}"
                )
            # frozen model: the one place a field is filled in after validation
            object.__setattr__(self, "ticket_secret", SecretStr(secrets.token_urlsafe(32)))
            return self
        value = self.ticket_secret.get_secret_value()
        if value.lower().startswith(PLACEHOLDER_PREFIXES):
            raise ValueError(
                "CITYWATCH_TICKET_SECRET is a placeholder: set it to a random value of at "
                "least 16 characters (e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`)"
            )
        if len(value) < 16:
            raise ValueError("CITYWATCH_TICKET_SECRET must be at least 16 characters")
        return self

    @property
    def ticket_key(self) -> bytes:
        """The ticket secret as the HMAC key (always set once validated)."""
        assert self.ticket_secret is not None
        return self.ticket_secret.get_secret_value().encode()
