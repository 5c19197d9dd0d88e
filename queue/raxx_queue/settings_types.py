"""The value types of Settings that carry their own parsing and checks: comma-separated
lists, real secrets (no placeholders) and the mirror's Standard Webhooks keys."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import AfterValidator, BeforeValidator, SecretStr
from pydantic_settings import NoDecode

from raxx_queue.settings_checks import check_real_secret
from raxx_queue.webhook_keys import (
    MIRROR_KEY_PREFIX,
    MIRROR_KEY_SIZES,
    MIRROR_SECRET_PREFIX,
    MIRROR_SECRET_SIZES,
    decode_base64_key,
)


def split_list(value: Any) -> Any:
    """`a, b,c` → ["a", "b", "c"]; anything else as it came."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def require_ssl(url: str) -> str:
    """Add sslmode=require to a Postgres URL unless it already sets sslmode."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if "sslmode" in query:
        return url
    query["sslmode"] = "require"
    return urlunsplit(parts._replace(query=urlencode(query)))


def _real_secret(value: SecretStr) -> SecretStr:
    check_real_secret(value)
    return value


def _mirror_secret(value: SecretStr) -> SecretStr:
    decode_base64_key(value.get_secret_value(), MIRROR_SECRET_PREFIX, MIRROR_SECRET_SIZES)
    return value


def _mirror_key(value: SecretStr) -> SecretStr:
    decode_base64_key(value.get_secret_value(), MIRROR_KEY_PREFIX, MIRROR_KEY_SIZES)
    return value


# a secret that is not a placeholder and has at least 16 characters
RealSecret = Annotated[SecretStr, AfterValidator(_real_secret)]
# comma-separated values of one variable (several secrets while rotating)
CommaList = Annotated[list[str], NoDecode, BeforeValidator(split_list)]
SecretList = Annotated[list[SecretStr], NoDecode, BeforeValidator(split_list)]
TokenList = Annotated[list[RealSecret], NoDecode, BeforeValidator(split_list)]
MirrorSecretList = Annotated[
    list[Annotated[SecretStr, AfterValidator(_mirror_secret)]],
    NoDecode,
    BeforeValidator(split_list),
]
MirrorKey = Annotated[SecretStr, AfterValidator(_mirror_key)]
