"""Settings: every knob Genesis has, read from ``GENESIS_*`` variables or ``.env``.

``get_settings()`` is cached; tests build ``Settings(...)`` directly and pass it to
``create_app`` so that nothing is wired at import time.
"""

from __future__ import annotations

import ipaddress
import secrets
import warnings
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from genesis.errors import ConfigurationError
from genesis.secretfile import create_once

MIN_SECRET_BYTES = 32  # RFC 8725 3.5: an HMAC key of at least 256 bits


class Settings(BaseSettings):
    """All configuration of one Genesis process."""

    model_config = SettingsConfigDict(
        env_prefix="GENESIS_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- where things live -------------------------------------------------
    data_dir: Path = Field(Path("./var"), description="Directory for the SQLite file, keys and logs.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///<data_dir>/genesis.db. postgresql://... scales out."
    )
    database_pool_size: int = Field(10, ge=1, le=200)
    database_max_overflow: int = Field(10, ge=0, le=200)
    database_timeout_seconds: float = Field(5.0, gt=0, le=120)
    redis_url: str | None = Field(None, description="redis://...; unset = in-process rate limits.")
    redis_failure_mode: Literal["fail-open", "fail-closed"] = "fail-open"
    key_prefix: str = Field("genesis", description="Prefix of every Redis key this deployment uses.")

    # --- server ------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    max_prices_per_request: int = Field(100_000, ge=1)
    price_max_future_seconds: int = Field(
        300, ge=0, le=366 * 86_400, description="Prices may be stored this far ahead of the server's clock."
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="CIDRs whose X-Forwarded-For is believed."
    )
    request_timeout_seconds: float = Field(30.0, gt=0)
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="A request whose headers are not complete this long after it began gets 408."
    )
    compute_timeout_seconds: float = Field(
        30.0, gt=0, le=3600, description="A large computation (backtest, scan) not done by then answers 503."
    )
    compute_max_concurrent: int | None = Field(
        None, ge=1, le=256, description="Large computations running at once per worker; unset = CPU count."
    )

    # --- authentication ----------------------------------------------------
    secret_key: SecretStr | None = Field(None, description="JWT signing key; unset = generated once in data_dir.")
    access_token_ttl_minutes: int = Field(30, ge=1, le=24 * 60)
    refresh_token_ttl_minutes: int = Field(7 * 24 * 60, ge=1)
    session_max_age: timedelta = Field(
        timedelta(days=30), ge=timedelta(minutes=1), le=timedelta(days=3650),
        description="Absolute lifetime of a session (a refresh family) from its login: seconds or ISO 8601 (P30D); "
                    "refreshing never extends it.",
    )
    token_issuer: str = "genesis"
    token_audience: str = "genesis-api"
    token_leeway_seconds: int = Field(10, ge=0, le=60)
    admin_username: str = Field("admin", min_length=1, max_length=64)
    admin_password: SecretStr | None = None
    login_failures_per_account_per_hour: int = Field(
        20, ge=1, le=100, description="Failed logins of an account in an hour before its attempts are slowed down."
    )
    login_attempts_per_ip_per_minute: int = Field(30, ge=1)
    login_failures_per_account_and_address: int = Field(
        10, ge=1, le=100, description="Failed logins of one account from one address per 15 minutes."
    )
    login_delay_max_seconds: int = Field(60, ge=1, le=3600, description="Cap of the growing delay between attempts.")
    login_known_address_days: int = Field(
        30, ge=0, le=365, description="An address with a successful login is exempt from the delays this long."
    )

    # --- rate limits (limits library notation: "N/period") -------------------
    rate_limit_default: str = "120/minute"
    rate_limit_health: str = "100/minute"
    rate_limit_strategy: str = "50/minute"
    rate_limit_performance: str = "20/minute"
    rate_limit_anomalies: str = "30/minute"
    rate_limit_token: str = "30/minute"
    rate_limit_backtests: str = "20/minute"
    rate_limit_prices: str = "60/minute"
    rate_limit_audit: str = "60/minute"
    rate_limit_docs: str = "60/minute"
    rate_limits_enabled: bool = True

    # --- logging -----------------------------------------------------------
    log_level: str = "INFO"
    log_console: bool = True
    log_dir: Path | None = Field(None, description="Default <data_dir>/logs.")
    log_file_max_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Rotate before genesis.log passes this.")
    log_file_backups: int = Field(30, ge=0, description="Rotated files kept (newest first); 0 = none.")
    log_file_max_total_bytes: int = Field(
        1024 * 1024 * 1024, ge=0, description="Rotated files kept within this many bytes in all; 0 = no byte cap."
    )
    log_rotate_daily: bool = Field(True, description="Also rotate at the first write of each UTC day.")
    log_daily_backups: int | None = Field(
        None, ge=0, description="Deprecated (one rotating file now): 0 = log_rotate_daily=false, else ignored."
    )
    log_gzip: bool = False
    log_format: Literal["json", "ecs", "otel"] = Field("json", description="Field names of the JSON lines.")
    log_console_format: Literal["auto", "console", "json"] = Field(
        "auto", description="auto = coloured key=value on a terminal, JSON lines otherwise."
    )
    log_service_name: str = Field("genesis", min_length=1, description="service.name in ECS and OTel lines.")
    log_redact_fields: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Extra field names to redact."
    )

    # --- audit -------------------------------------------------------------
    audit_batch_max: int = Field(2000, ge=1)
    audit_head_interval_seconds: float = Field(
        60.0, ge=0.5, le=86_400,
        description="Sign a tree head this often when new audit events exist (one cadence for the deployment).",
    )
    audit_head_log: Path | None = Field(
        None, description="Append-only file of every new signed tree head; default <data_dir>/audit-heads.log.",
    )
    audit_log_origin: str | None = Field(
        None, min_length=1, max_length=255,
        description="The log's name in signed tree heads; default genesis-audit/<key id of the signing key>.",
    )
    audit_hmac_key: SecretStr | None = Field(None, description="Optional key for HMAC-SHA256 chain hashes.")
    audit_public_keys: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="PEM public keys of other hosts' checkpoint signers (comma-separated paths)."
    )
    audit_retention_days: int = Field(365, ge=0, description="Archiving newer events than this is refused.")
    audit_verify_interval_seconds: float = Field(
        300.0, ge=0, le=86_400,
        description="Re-verify the audit chain this often (incrementally; the first check covers all); 0 = never.",
    )

    @field_validator("audit_verify_interval_seconds")
    @classmethod
    def _verify_interval(cls, value: float) -> float:
        if 0 < value < 0.5:
            raise ValueError("must be 0 (off) or at least 0.5 seconds")
        return value
    audit_refusal_window_seconds: float = Field(
        60.0, ge=0, le=3600,
        description="Rate-limit refusals of one actor, address and route within this window: the first audited in "
                    "full, the rest as one summary event when it closes; 0 = every refusal in full.",
    )

    # --- push: streams (/ws, /stream) and webhooks; see docs/push.md ----------------
    push_connections_per_principal: int = Field(10, ge=1, le=10_000, description="Streams per principal, worker.")
    push_subscriptions_per_connection: int = Field(50, ge=1, le=1000)
    push_client_messages_per_second: float = Field(10.0, gt=0, le=1000)
    push_client_messages_burst: int = Field(20, ge=1, le=10_000)
    push_queue_messages: int = Field(256, ge=1, le=100_000, description="Backlog before a 'lagged' gap notice.")
    push_replay_count: int = Field(1000, ge=1, le=1_000_000, description="Messages kept per topic for resumption.")
    push_replay_bytes: int = Field(1024 * 1024, ge=64 * 1024)
    push_replay_bytes_total: int = Field(64 * 1024 * 1024, ge=64 * 1024)
    push_heartbeat_seconds: float = Field(15.0, gt=0, le=300)
    push_revalidate_seconds: float = Field(10.0, gt=0, le=3600, description="Re-check a stream's token this often.")
    push_ticket_ttl_seconds: float = Field(30.0, gt=0, le=300, description="Lifetime of a single-use stream ticket.")
    push_auth_timeout_seconds: float = Field(5.0, gt=0, le=60, description="Wait this long for a first 'auth' message.")
    push_allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed to open /ws besides the server's own (e.g. https://ui.example)."
    )
    push_anomaly_method: Literal["log_return_zscore", "price_zscore", "mad"] = "log_return_zscore"
    push_anomaly_window: int = Field(100, ge=2, le=100_000)
    push_anomaly_threshold: float = Field(3.0, gt=0, le=1000)
    max_connections: int = Field(2048, ge=16, le=1_000_000, description="Open connections per worker (uvicorn).")
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Host names and CIDRs webhooks may reach despite the SSRF rules (http too)."
    )
    webhook_connect_timeout_seconds: float = Field(5.0, gt=0, le=60)
    webhook_timeout_seconds: float = Field(15.0, gt=0, le=120)
    webhook_outbox_max_pending: int = Field(10_000, ge=1, description="Undelivered deliveries before an endpoint "
                                            "is disabled (outbox-full).")
    webhook_poll_seconds: float = Field(1.0, gt=0, le=60, description="How often the relay looks for due deliveries.")
    webhook_max_endpoints: int = Field(100, ge=1, le=10_000)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("log_redact_fields", "audit_public_keys", "push_allowed_origins", "webhook_allowed_hosts",
                     mode="before")
    @classmethod
    def _split_fields(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("audit_log_origin")
    @classmethod
    def _origin(cls, value: str | None) -> str | None:
        if value is not None and ("+" in value or any(c.isspace() or ord(c) < 32 for c in value)):
            raise ValueError("a log origin has no spaces, '+' or control characters (e.g. audit.example.com/genesis)")
        return value

    @field_validator("admin_password")
    @classmethod
    def _admin_password_policy(cls, value: SecretStr | None) -> SecretStr | None:
        # The first admin is made from it: it must pass the policy every other password passes.
        from genesis.security.passwords import password_problem

        problem = None if value is None else password_problem(value.get_secret_value())
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _hosts_or_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            if "/" in item:
                ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("secret_key")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes (256 bits)")
        return value

    @model_validator(mode="after")
    def _defaults_from_data_dir(self) -> Settings:
        if self.database_url is None:
            self.database_url = f"sqlite:///{(self.data_dir / 'genesis.db').as_posix()}"
        if self.log_dir is None:
            self.log_dir = self.data_dir / "logs"
        if self.audit_head_log is None:
            self.audit_head_log = self.data_dir / "audit-heads.log"
        return self

    @model_validator(mode="after")
    def _deprecated_daily_backups(self) -> Settings:
        if self.log_daily_backups is not None:
            # FutureWarning, not DeprecationWarning: the reader is an operator, and Python shows it by default.
            warnings.warn(
                "GENESIS_LOG_DAILY_BACKUPS is deprecated: genesis.log now rotates by size and by UTC day into one "
                "series of files, capped by GENESIS_LOG_FILE_BACKUPS and GENESIS_LOG_FILE_MAX_TOTAL_BYTES"
                + ("; 0 is read as GENESIS_LOG_ROTATE_DAILY=false" if self.log_daily_backups == 0 else
                   "; the value is ignored"),
                FutureWarning,
                stacklevel=2,
            )
            if self.log_daily_backups == 0:
                self.log_rotate_daily = False
        return self

    # --- derived -----------------------------------------------------------
    @property
    def db_url(self) -> str:
        assert self.database_url is not None
        return self.database_url

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")

    @property
    def head_log_path(self) -> Path:
        assert self.audit_head_log is not None
        return self.audit_head_log

    @property
    def logs_path(self) -> Path:
        assert self.log_dir is not None
        return self.log_dir

    def signing_key(self) -> str:
        """The JWT signing key: configured, or generated once and kept in the data dir (mode 0600)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return read_or_create_secret(self.data_dir / "secret.key", nbytes=48)


def read_or_create_secret(path: Path, *, nbytes: int) -> str:
    """Return the secret stored at ``path``, creating it (mode 0600) when absent."""
    create_once(path, secrets.token_urlsafe(nbytes).encode("ascii"))
    return path.read_text(encoding="ascii").strip()


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation errors into one message naming each variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except SettingsError as exc:
        raise ConfigurationError(f"invalid configuration: {exc}") from exc
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "GENESIS_" + "_".join(str(p) for p in err["loc"][:1]).upper()
            problems.append(f"{name}: {err['msg']}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
