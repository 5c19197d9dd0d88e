"""Configuration, read once from the environment at start-up (SPEC §2)."""

from __future__ import annotations

import enum
import logging
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from raxx_queue.settings_checks import (
    HOST_NAME,
    PLACEHOLDERS,  # noqa: F401 - still importable from here
    production_problems,
    shared_tokens,
)
from raxx_queue.settings_types import (
    CommaList,
    MirrorKey,
    MirrorSecretList,
    RealSecret,
    SecretList,
    TokenList,
    require_ssl,
)
from raxx_queue.webhook_keys import (
    MIRROR_KEY_PREFIX,
    MIRROR_KEY_SIZES,
    MIRROR_SECRET_PREFIX,
    MIRROR_SECRET_SIZES,
    decode_base64_key,
)

log = logging.getLogger(__name__)

PRODUCTION_REQUIRED = (
    "DATABASE_URL",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_PRICE_ID_PRO",
    "STRIPE_PRICE_ID_PRO_PLUS",
    "QUEUE_SERVICE_TOKEN_RAPTOR",
    "QUEUE_SERVICE_TOKEN_CONSOLE",
    "RAPTOR_MIRROR_URL",
    "RAPTOR_MIRROR_TOKEN",
    "BILLING_AUDIT_HMAC_KEY",
    "RAPTOR_MIRROR_SIGNING_SECRET",
)


class Environment(enum.StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    STAGING = "staging"
    PRODUCTION = "production"


class PoolMode(enum.StrEnum):
    """What DATABASE_URL reaches: Postgres (or a session pooler), or a transaction pooler."""

    SESSION = "session"
    TRANSACTION = "transaction"


class LogFormat(enum.StrEnum):
    JSON = "json"
    CONSOLE = "console"


class ConfigError(Exception):
    """A start-up configuration problem; the message names variables, never values."""


class Settings(BaseSettings):
    """Every variable of SPEC §2. Secrets are SecretStr and have no defaults."""

    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    queue_env: Environment = Environment.DEVELOPMENT
    port: int = Field(default=8000, ge=1, le=65535)
    # worker processes of `serve`, each with its own socket, pool and statement lane
    web_concurrency: int = Field(default=1, ge=1, le=64)
    database_url: SecretStr | None = None
    # connections per worker process; Postgres does best with a few per core, and
    # the plan's connection limit must cover every worker (and one-off dynos)
    database_pool_size: int = Field(default=10, ge=1, le=100)
    # `transaction` behind PgBouncer in transaction mode (Heroku's connection pooling)
    database_pool_mode: PoolMode = PoolMode.SESSION
    # the plan's connection limit (Heroku Essential: 20), checked at start-up
    database_connection_limit: int | None = Field(default=None, ge=1)
    # connections kept free for the release phase and one-off dynos
    database_connection_reserve: int = Field(default=6, ge=0)  # db.budget.DEFAULT_RESERVE
    queue_data_dir: Path = Path(".queue-data")
    queue_migrations_dir: Path | None = None
    flag_queue_billing: bool = False
    flag_billing_audit_writes: bool = True

    stripe_restricted_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("STRIPE_RESTRICTED_KEY")
    )
    stripe_secret_key: SecretStr | None = None
    stripe_api_base: HttpUrl | None = None
    stripe_webhook_secret: SecretList = Field(default_factory=list)
    stripe_webhook_tolerance_seconds: int = Field(default=300, ge=1, le=86_400)
    # secrets of the thin-event destination (event notifications), comma-separated
    stripe_thin_webhook_secret: SecretList = Field(default_factory=list)
    # how often the catch-up of missed events runs (0: never); it needs a Stripe key
    stripe_event_catchup_seconds: int = Field(default=300, ge=0, le=86_400)
    stripe_price_id_pro: str | None = None
    stripe_price_id_pro_plus: str | None = None

    # bearer tokens of each caller, comma-separated: a new one is added beside the old
    # one, callers move over, then the old one is removed (rotation without an outage)
    queue_service_token_raptor: TokenList = Field(default_factory=list)
    queue_service_token_console: TokenList = Field(default_factory=list)
    # read-only tokens of GET /metrics (the scraper), comma-separated
    metrics_token: TokenList = Field(default_factory=list)
    raptor_mirror_url: HttpUrl | None = None
    raptor_mirror_token: RealSecret | None = None
    # Standard Webhooks secrets signing every push (`whsec_…`, comma-separated: one
    # signature per secret during a rotation), and an optional ed25519 key (`whsk_…`)
    raptor_mirror_signing_secret: MirrorSecretList = Field(default_factory=list)
    raptor_mirror_signing_key: MirrorKey | None = None
    billing_audit_hmac_key: RealSecret | None = None
    grace_period_days: int = Field(default=7, ge=0, le=90)
    # stored Stripe event payloads are stripped to ids after this many days (0: never)
    event_payload_retention_days: int = Field(default=35, ge=0, le=3650)
    # an open dispute on a customer's payment suspends access ("suspend") or not ("keep")
    dispute_access: Literal["suspend", "keep"] = "suspend"

    portal_return_url: HttpUrl | None = None
    checkout_success_url: HttpUrl | None = None
    checkout_cancel_url: HttpUrl | None = None
    # hosts a request may send Stripe's pages back to (besides the defaults' hosts)
    redirect_allowed_hosts: CommaList = Field(default_factory=list)

    sentry_dsn: SecretStr | None = None
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.JSON

    @field_validator("redirect_allowed_hosts")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        hosts = [host.lower() for host in value]
        if any(not HOST_NAME.fullmatch(host) for host in hosts):
            raise ValueError("host names only, comma-separated (no scheme, port or path)")
        return hosts

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("unknown log level")
        return level

    @field_validator(
        "database_url",
        "stripe_restricted_key",
        "stripe_secret_key",
        "raptor_mirror_token",
        "raptor_mirror_signing_key",
        "billing_audit_hmac_key",
        "sentry_dsn",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme
            if scheme not in {"postgres", "postgresql"}:
                raise ValueError("must be a postgres:// or postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _check_environment(self) -> Settings:
        if self.queue_env is Environment.PRODUCTION:
            missing = [name for name in PRODUCTION_REQUIRED if not self._is_set(name)]
            if self.stripe_api_key is None:
                missing.append("STRIPE_RESTRICTED_KEY")
            if missing:
                raise ValueError(f"required in production: {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _check_hardening(self) -> Settings:
        problems = shared_tokens(self._token_variables())
        if self.queue_env is Environment.PRODUCTION:
            problems += production_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _token_variables(self) -> dict[str, list[str]]:
        """Each token variable → its tokens."""
        return {
            variable: tokens
            for variable, tokens in zip(
                ("QUEUE_SERVICE_TOKEN_RAPTOR", "QUEUE_SERVICE_TOKEN_CONSOLE", "METRICS_TOKEN"),
                self.service_tokens().values(),
                strict=True,
            )
        }

    def _is_set(self, name: str) -> bool:
        value = getattr(self, name.lower())
        return bool(value) if isinstance(value, list) else value is not None

    @model_validator(mode="after")
    def _check_mirror(self) -> Settings:
        if self.raptor_mirror_url is not None and self.raptor_mirror_token is None:
            raise ValueError("RAPTOR_MIRROR_TOKEN is required when RAPTOR_MIRROR_URL is set")
        return self

    @property
    def is_production(self) -> bool:
        return self.queue_env is Environment.PRODUCTION

    @property
    def stripe_api_key(self) -> SecretStr | None:
        return self.stripe_restricted_key or self.stripe_secret_key

    def database_dsn(self) -> str | None:
        """The configured database URL, with sslmode=require enforced in production."""
        if self.database_url is None:
            return None
        url = self.database_url.get_secret_value()
        return require_ssl(url) if self.is_production else url

    def service_tokens(self) -> dict[str, list[str]]:
        """Caller name → its bearer tokens (none when not configured)."""
        return {
            "raptor": [token.get_secret_value() for token in self.queue_service_token_raptor],
            "console": [token.get_secret_value() for token in self.queue_service_token_console],
            "metrics": [token.get_secret_value() for token in self.metrics_token],
        }

    def webhook_secrets(self) -> list[str]:
        return [secret.get_secret_value() for secret in self.stripe_webhook_secret]

    def thin_webhook_secrets(self) -> list[str]:
        return [secret.get_secret_value() for secret in self.stripe_thin_webhook_secret]

    def mirror_signing_secrets(self) -> list[bytes]:
        """The decoded `whsec_` secrets, in the configured order."""
        return [
            decode_base64_key(s.get_secret_value(), MIRROR_SECRET_PREFIX, MIRROR_SECRET_SIZES)
            for s in self.raptor_mirror_signing_secret
        ]

    def mirror_signing_seed(self) -> bytes | None:
        """The ed25519 private key's 32-byte seed, when one is configured."""
        if self.raptor_mirror_signing_key is None:
            return None
        raw = self.raptor_mirror_signing_key.get_secret_value()
        return decode_base64_key(raw, MIRROR_KEY_PREFIX, MIRROR_KEY_SIZES)[:32]

    def redirect_hosts(self) -> frozenset[str]:
        """Hosts Checkout and the Portal may return to: the configured defaults' and
        REDIRECT_ALLOWED_HOSTS."""
        defaults = (self.portal_return_url, self.checkout_success_url, self.checkout_cancel_url)
        hosts = {url.host.lower() for url in defaults if url is not None and url.host}
        return frozenset(hosts | set(self.redirect_allowed_hosts))

    @property
    def event_catchup_enabled(self) -> bool:
        """The catch-up runs when it has an interval and a Stripe key to read with."""
        return self.stripe_event_catchup_seconds > 0 and self.stripe_api_key is not None


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        message = str(item["msg"]).removeprefix("Value error, ")
        loc = ".".join(str(part) for part in item["loc"])
        problems.append(f"{loc.upper()}: {message}" if loc else message)
    return "invalid configuration: " + "; ".join(problems)


def load_settings(**overrides: Any) -> Settings:
    """Read the environment; raise ConfigError naming the bad variables, never their values."""
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None
    if settings.stripe_restricted_key is None and settings.stripe_secret_key is not None:
        log.warning(
            "STRIPE_SECRET_KEY is set and STRIPE_RESTRICTED_KEY is not: using "
            "STRIPE_SECRET_KEY; prefer a restricted key in STRIPE_RESTRICTED_KEY"
        )
    return settings
