"""Ingest settings: env vars ``CITYWATCH_*``, a TOML or .env file, and CLI flags.

Precedence: explicit values (CLI flags) > environment > file > defaults. Every value is
validated on load; a bad one fails with the setting's name and what is wrong.
"""

import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ingest.source import parse_broker_url


class IngestSettings(BaseSettings):
    """Everything ``citywatch ingest`` can be told."""

    model_config = SettingsConfigDict(env_prefix="CITYWATCH_", extra="forbid", frozen=True)

    broker: str = Field("mqtt://127.0.0.1:1883", description="MQTT broker URL")
    influx: str = Field("http://127.0.0.1:8086", description="InfluxDB URL (v1 API)")
    database: str = Field("citywatch", min_length=1, max_length=200)
    influx_token: SecretStr | None = Field(None, description="sent as Authorization: Token")
    spool_dir: Path = Path("var/ingest-spool")
    spool_max_bytes: int = Field(1 << 30, gt=0)
    client_id: str = Field("citywatch-ingest", min_length=1, max_length=128)
    session_expiry_s: int = Field(7 * 86400, gt=0, le=0xFFFFFFFE)
    receive_maximum: int = Field(20000, ge=1, le=65535)
    batch_lines: int = Field(5000, ge=1, le=100000)
    flush_interval_s: float = Field(1.0, gt=0, le=60)
    write_timeout_s: float = Field(10.0, gt=0)
    retry_budget_s: float = Field(5.0, ge=0)
    backoff_cap_s: float = Field(
        10.0, gt=0, le=3600, description="longest wait between InfluxDB retries and replays"
    )
    metrics_port: int = Field(9108, ge=0, le=65535, description="/metrics port; 0 = off")
    metrics_host: str = "127.0.0.1"
    self_metrics_interval_s: float = Field(5.0, gt=0)
    liveness_misses: float = Field(3.0, gt=0)
    liveness_grace_s: float = Field(10.0, ge=0)
    dedupe_window: int = Field(32, ge=1, le=10000)
    max_pending_batches: int = Field(
        64,
        ge=1,
        description="batches waiting for the writer beyond which QoS 0 messages are dropped "
        "(and counted): QoS 1 waits in the broker instead",
    )
    instance: str = Field(default_factory=socket.gethostname, min_length=1)

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        parse_broker_url(value)
        return value

    @field_validator("influx")
    @classmethod
    def _influx_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s)://host[:port] URL")
        return value.rstrip("/")

    @field_validator("database")
    @classmethod
    def _database_name(cls, value: str) -> str:
        if any(ord(c) < 32 for c in value):
            raise ValueError("the database name must not contain control characters")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            TomlConfigSettingsSource(settings_cls),
            file_secret_settings,
        )


def load_settings(config_file: Path | None = None, **overrides: Any) -> IngestSettings:
    """Settings from a TOML (``*.toml``) or dotenv (any other name) file, env and overrides.

    ``overrides`` whose value is None are ignored (CLI flags not given).
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    if config_file is None:
        return IngestSettings(**given)
    if not config_file.is_file():
        raise FileNotFoundError(f"config file {config_file} does not exist")
    if config_file.suffix == ".toml":
        config = SettingsConfigDict(**{**IngestSettings.model_config, "toml_file": config_file})
        from_file = type("IngestSettingsFromToml", (IngestSettings,), {"model_config": config})
        settings: IngestSettings = from_file(**given)
        return settings
    return IngestSettings(_env_file=config_file, **given)  # type: ignore[call-arg]
