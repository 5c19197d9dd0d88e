"""The access policy as operators read it: the rule table rendered for docs/access-policy.md.

The policy itself is the table billing_access_rule (deploy/billing_access_policy.sql),
applied by billing_access; this module only reads and renders it, so the document
cannot drift from what the database decides (tests/billing/test_access_policy_doc.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from raxx_queue.db.pool import Connection

RULES = """
SELECT priority, rule, statuses, customer_deleted, dispute_open, collection_paused,
       grace_open, access, access_reason, explanation
  FROM billing_access_rule
 ORDER BY priority
"""

BEGIN_MARK = "<!-- policy table: rendered from billing_access_rule, do not edit -->"
END_MARK = "<!-- end of policy table -->"

_CONDITIONS = (
    ("customer_deleted", "customer deleted"),
    ("dispute_open", "open dispute"),
    ("collection_paused", "collection paused past the paid period"),
    ("grace_open", "inside the grace window"),
)


async def fetch_rules(conn: Connection) -> list[Mapping[str, Any]]:
    return [dict(row) for row in await conn.fetch(RULES)]


def _when(rule: Mapping[str, Any]) -> str:
    parts = []
    statuses = rule["statuses"]
    if statuses is not None:
        parts.append("status " + " or ".join(f"`{s}`" for s in statuses))
    for key, words in _CONDITIONS:
        if rule[key] is not None:
            parts.append(words if rule[key] else f"not {words}")
    return ", ".join(parts) or "any"


def render_rules(rules: Sequence[Mapping[str, Any]]) -> str:
    """The Markdown table of the rules, first match wins."""
    lines = [
        BEGIN_MARK,
        "",
        "| # | rule | when | access | access_reason | entitled | why |",
        "|---|---|---|---|---|---|---|",
    ]
    for rule in rules:
        reason = f"`{rule['access_reason']}`" if rule["access_reason"] else "null"
        entitled = "yes" if rule["access"] in ("active", "trialing", "grace") else "no"
        lines.append(
            f"| {rule['priority']} | `{rule['rule']}` | {_when(rule)} | `{rule['access']}` "
            f"| {reason} | {entitled} | {rule['explanation']} |"
        )
    lines += ["", END_MARK]
    return "\n".join(lines)


def replace_table(document: str, table: str) -> str:
    """The document with its rendered table replaced by `table`."""
    start, end = document.index(BEGIN_MARK), document.index(END_MARK) + len(END_MARK)
    return document[:start] + table + document[end:]
