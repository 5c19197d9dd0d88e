"""Start-up validation: bad configuration stops the process with one line naming the variable."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from raxx_queue.plans import price_for, price_tiers
from raxx_queue.settings import ConfigError, load_settings
from tests.support import process, values

SECRET_VALUE = "super-secret-token-value-123456"


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("QUEUE_", "STRIPE_"))}
    base.pop("DATABASE_URL", None)
    return process.run_cli(*args, env={**base, **env}, timeout=60)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("QUEUE_", "STRIPE_", "RAPTOR_", "BILLING_", "FLAG_", "GRACE_")):
            monkeypatch.delenv(name)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_POOL_SIZE", raising=False)
    monkeypatch.delenv("METRICS_TOKEN", raising=False)
    return monkeypatch


def test_defaults(clean_env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.queue_env == "development"
    assert settings.port == 8000
    assert settings.flag_queue_billing is False
    assert settings.flag_billing_audit_writes is True
    assert settings.stripe_webhook_tolerance_seconds == 300
    assert settings.grace_period_days == 7
    assert settings.queue_data_dir == Path(".queue-data")


def test_webhook_secrets_are_comma_separated(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(
        "STRIPE_WEBHOOK_SECRET", f" {values.WEBHOOK_SECRET} ,{values.OLD_WEBHOOK_SECRET}"
    )
    assert load_settings().webhook_secrets() == [values.WEBHOOK_SECRET, values.OLD_WEBHOOK_SECRET]


def test_thin_webhook_secrets_are_their_own_and_comma_separated(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv(
        "STRIPE_THIN_WEBHOOK_SECRET",
        f"{values.THIN_WEBHOOK_SECRET}, {values.OLD_THIN_WEBHOOK_SECRET}",
    )
    settings = load_settings()
    assert settings.thin_webhook_secrets() == [
        values.THIN_WEBHOOK_SECRET,
        values.OLD_THIN_WEBHOOK_SECRET,
    ]
    assert settings.webhook_secrets() == []
    assert values.THIN_WEBHOOK_SECRET not in repr(settings)


def test_the_catchup_runs_every_five_minutes_with_a_key_and_zero_turns_it_off(
    clean_env: pytest.MonkeyPatch,
) -> None:
    assert load_settings().stripe_event_catchup_seconds == 300
    assert load_settings().event_catchup_enabled is False  # no Stripe key to read with
    clean_env.setenv("STRIPE_RESTRICTED_KEY", values.STRIPE_KEY)
    assert load_settings().event_catchup_enabled is True
    clean_env.setenv("STRIPE_EVENT_CATCHUP_SECONDS", "0")
    assert load_settings().event_catchup_enabled is False


def test_price_ids_map_to_tiers(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("STRIPE_PRICE_ID_PRO", "price_a")
    clean_env.setenv("STRIPE_PRICE_ID_PRO_PLUS", "price_b")
    settings = load_settings()
    assert price_tiers(settings) == {"price_a": "pro", "price_b": "pro_plus"}
    assert price_for(settings, "pro_plus") == "price_b"


def test_secret_key_is_a_fallback_with_a_warning(
    clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clean_env.setenv("STRIPE_SECRET_KEY", "sk_test_fallback123")
    settings = load_settings()
    assert settings.stripe_api_key is not None
    assert settings.stripe_api_key.get_secret_value() == "sk_test_fallback123"
    assert "STRIPE_SECRET_KEY" in caplog.text
    assert "STRIPE_RESTRICTED_KEY" in caplog.text
    assert "sk_test_fallback123" not in caplog.text


def test_restricted_key_wins_over_secret_key(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("STRIPE_SECRET_KEY", "sk_test_a")
    clean_env.setenv("STRIPE_RESTRICTED_KEY", "rk_test_b")
    key = load_settings().stripe_api_key
    assert key is not None
    assert key.get_secret_value() == "rk_test_b"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "not-a-port"),
        ("PORT", "70000"),
        ("QUEUE_ENV", "qa-cluster"),
        ("FLAG_QUEUE_BILLING", "maybe"),
        ("GRACE_PERIOD_DAYS", "-1"),
        ("DISPUTE_ACCESS", "lenient"),
        ("DATABASE_POOL_SIZE", "0"),
        ("DATABASE_POOL_MODE", "statement"),
        ("DATABASE_CONNECTION_LIMIT", "0"),
        ("DATABASE_CONNECTION_RESERVE", "-1"),
        ("STRIPE_WEBHOOK_TOLERANCE_SECONDS", "0"),
        ("STRIPE_EVENT_CATCHUP_SECONDS", "-1"),
        ("RAPTOR_MIRROR_URL", "not a url"),
        ("DATABASE_URL", "mysql://u:pw@h/db"),
        ("QUEUE_SERVICE_TOKEN_RAPTOR", "changeme"),
        ("QUEUE_SERVICE_TOKEN_RAPTOR", "r" * 32 + ",short"),
        ("METRICS_TOKEN", "placeholder"),
        ("REDIRECT_ALLOWED_HOSTS", "app.raxx.com,https://evil.example/"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_malformed_values_name_the_variable(
    clean_env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert name in str(error.value)
    assert value not in str(error.value) or value in {"0", "-1"}


def test_pool_size_per_worker(clean_env: pytest.MonkeyPatch) -> None:
    assert load_settings().database_pool_size == 10
    clean_env.setenv("DATABASE_POOL_SIZE", "4")
    assert load_settings().database_pool_size == 4


def test_production_requires_database_url(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("QUEUE_ENV", "production")
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_settings()


PRODUCTION = {
    "QUEUE_ENV": "production",
    "DATABASE_URL": "postgres://u:pw@db.example:5432/queue",
    "STRIPE_RESTRICTED_KEY": "rk_live_x",
    "STRIPE_WEBHOOK_SECRET": "whsec_" + "w" * 32,
    "STRIPE_PRICE_ID_PRO": "price_a",
    "STRIPE_PRICE_ID_PRO_PLUS": "price_b",
    "QUEUE_SERVICE_TOKEN_RAPTOR": "r" * 32,
    "QUEUE_SERVICE_TOKEN_CONSOLE": "c" * 32,
    "RAPTOR_MIRROR_URL": "https://raptor.example/internal/billing/mirror",
    "RAPTOR_MIRROR_TOKEN": "m" * 32,
    "BILLING_AUDIT_HMAC_KEY": "k" * 32,
    "RAPTOR_MIRROR_SIGNING_SECRET": values.MIRROR_SIGNING_SECRET,
}


def test_production_requires_its_secrets(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in PRODUCTION.items():
        clean_env.setenv(name, value)
    load_settings()
    for name in PRODUCTION:
        if name == "QUEUE_ENV":
            continue
        clean_env.delenv(name)
        with pytest.raises(ConfigError, match=name):
            load_settings()
        clean_env.setenv(name, PRODUCTION[name])


def test_production_enforces_sslmode(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in PRODUCTION.items():
        clean_env.setenv(name, value)
    clean_env.setenv("DATABASE_URL", "postgres://u:pw@db.example:5432/queue")
    assert load_settings().database_dsn() == "postgres://u:pw@db.example:5432/queue?sslmode=require"
    clean_env.setenv("DATABASE_URL", "postgres://u:pw@db.example/queue?sslmode=verify-full")
    assert load_settings().database_dsn() == "postgres://u:pw@db.example/queue?sslmode=verify-full"


def test_empty_values_count_as_missing(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in PRODUCTION.items():
        clean_env.setenv(name, value)
    clean_env.setenv("DATABASE_URL", "   ")
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RAPTOR_MIRROR_SIGNING_SECRET", "mirror-secret-without-its-prefix-0123456789"),
        ("RAPTOR_MIRROR_SIGNING_SECRET", "whsec_not*base64*at*all*0123456789"),
        ("RAPTOR_MIRROR_SIGNING_SECRET", f"{values.MIRROR_SIGNING_SECRET},whsec_c2hvcnQ="),
        ("RAPTOR_MIRROR_SIGNING_KEY", values.MIRROR_SIGNING_SECRET),
        ("RAPTOR_MIRROR_SIGNING_KEY", "whsk_dG9vIHNob3J0IGZvciBhbiBlZDI1NTE5IHNlZWQ="),
    ],
)
def test_mirror_signing_secrets_are_checked_at_boot_and_never_echoed(
    clean_env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match=name) as error:
        load_settings()
    assert value.split(",")[-1] not in str(error.value)
    assert value.split(",")[-1].split("_", 1)[-1] not in str(error.value)


def test_mirror_signing_secrets_are_comma_separated_and_decoded(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv(
        "RAPTOR_MIRROR_SIGNING_SECRET",
        f"{values.MIRROR_SIGNING_SECRET}, {values.NEW_MIRROR_SIGNING_SECRET}",
    )
    clean_env.setenv("RAPTOR_MIRROR_SIGNING_KEY", values.MIRROR_SIGNING_KEY)
    settings = load_settings()
    assert settings.mirror_signing_secrets() == [
        values.MIRROR_SIGNING_BYTES,
        values.NEW_MIRROR_SIGNING_BYTES,
    ]
    assert settings.mirror_signing_seed() == b"mirror-ed25519-test-seed-32bytes"
    assert values.MIRROR_SIGNING_SECRET not in repr(settings)
    assert values.MIRROR_SIGNING_KEY not in repr(settings)


def test_cli_exits_with_one_line_and_no_value() -> None:
    result = run_cli(
        {"QUEUE_SERVICE_TOKEN_CONSOLE": "short", "RAPTOR_MIRROR_TOKEN": SECRET_VALUE, "PORT": "x"},
        "migrate",
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "QUEUE_SERVICE_TOKEN_CONSOLE" in lines[0]
    assert "PORT" in lines[0]
    assert "short" not in lines[0].replace("shorter", "")
    assert SECRET_VALUE not in result.stderr + result.stdout


def test_cli_production_without_database_url() -> None:
    result = run_cli({"QUEUE_ENV": "production"}, "serve")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "DATABASE_URL" in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "postgres://u:pw@db.example:5432/queue?sslmode=disable"),
        ("DATABASE_URL", "postgres://u:pw@db.example:5432/queue?sslmode=prefer"),
        ("RAPTOR_MIRROR_URL", "http://raptor.example/internal/billing/mirror"),
        ("STRIPE_API_BASE", "https://stripe.attacker.example"),
        ("STRIPE_API_BASE", "http://api.stripe.com"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_short"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_" + "w" * 32 + ",whsec_old"),
        ("STRIPE_THIN_WEBHOOK_SECRET", "whsec_thin"),
        ("QUEUE_SERVICE_TOKEN_CONSOLE", "r" * 32),  # Raptor's token
    ],
)
def test_production_refuses_insecure_settings_naming_the_variable(
    clean_env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """Finding 9: each is refused at start-up with one line naming the variable."""
    for variable, setting in PRODUCTION.items():
        clean_env.setenv(variable, setting)
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert name in message
    assert "\n" not in message
    for value_part in ("pw@", "r" * 32, "attacker"):
        assert value_part not in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        # a PgBouncer or a peer on the same machine: nothing crosses the network
        ("DATABASE_URL", "postgres://u:pw@127.0.0.1:6432/queue?sslmode=disable"),
        ("DATABASE_URL", "postgres://u:pw@localhost/queue?sslmode=disable"),
        ("RAPTOR_MIRROR_URL", "http://127.0.0.1:9000/mirror"),
        ("STRIPE_API_BASE", "http://127.0.0.1:12111"),
        ("STRIPE_API_BASE", "https://api.stripe.com"),
    ],
)
def test_production_accepts_loopback_addresses(
    clean_env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    for variable, setting in PRODUCTION.items():
        clean_env.setenv(variable, setting)
    clean_env.setenv(name, value)
    load_settings()


def test_identical_service_tokens_are_refused_everywhere(clean_env: pytest.MonkeyPatch) -> None:
    """A token that two callers hold would make one pass for the other."""
    clean_env.setenv("QUEUE_SERVICE_TOKEN_RAPTOR", values.RAPTOR_TOKEN)
    clean_env.setenv("QUEUE_SERVICE_TOKEN_CONSOLE", values.RAPTOR_TOKEN)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "QUEUE_SERVICE_TOKEN_RAPTOR, QUEUE_SERVICE_TOKEN_CONSOLE" in str(error.value)
    assert values.RAPTOR_TOKEN not in str(error.value)


def test_each_caller_takes_several_tokens_comma_separated(clean_env: pytest.MonkeyPatch) -> None:
    """Finding 7: rotation without an outage; /metrics has its own read-only token."""
    clean_env.setenv("QUEUE_SERVICE_TOKEN_RAPTOR", f" {values.RAPTOR_TOKEN} , {'n' * 24}")
    clean_env.setenv("QUEUE_SERVICE_TOKEN_CONSOLE", values.CONSOLE_TOKEN)
    clean_env.setenv("METRICS_TOKEN", values.METRICS_TOKEN)
    settings = load_settings()
    assert settings.service_tokens() == {
        "raptor": [values.RAPTOR_TOKEN, "n" * 24],
        "console": [values.CONSOLE_TOKEN],
        "metrics": [values.METRICS_TOKEN],
    }
    assert values.METRICS_TOKEN not in repr(settings)
    clean_env.setenv("METRICS_TOKEN", values.CONSOLE_TOKEN)
    with pytest.raises(ConfigError, match="QUEUE_SERVICE_TOKEN_CONSOLE, METRICS_TOKEN"):
        load_settings()


def test_event_payloads_are_kept_35_days_and_zero_keeps_them(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.delenv("EVENT_PAYLOAD_RETENTION_DAYS", raising=False)
    assert load_settings().event_payload_retention_days == 35
    clean_env.setenv("EVENT_PAYLOAD_RETENTION_DAYS", "0")
    assert load_settings().event_payload_retention_days == 0
    clean_env.setenv("EVENT_PAYLOAD_RETENTION_DAYS", "-1")
    with pytest.raises(ConfigError, match="EVENT_PAYLOAD_RETENTION_DAYS"):
        load_settings()
