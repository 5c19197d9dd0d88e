"""docs/access-policy.md shows the rule table the database applies, and the table is whole."""

from __future__ import annotations

import os
from pathlib import Path

from raxx_queue.billing.access_policy import fetch_rules, render_rules, replace_table
from raxx_queue.vocabulary import STRIPE_SUBSCRIPTION_STATUSES
from tests.support.database import Conn

DOC = Path(__file__).resolve().parents[2] / "docs" / "access-policy.md"


async def test_the_document_shows_the_rules_the_database_applies(db: Conn) -> None:
    document = DOC.read_text()
    rendered = replace_table(document, render_rules(await fetch_rules(db)))
    if os.environ.get("QUEUE_WRITE_DOCS") == "1":
        DOC.write_text(rendered)
    assert document == rendered, "docs/access-policy.md is stale: rerun with QUEUE_WRITE_DOCS=1"


async def test_every_combination_of_facts_is_decided(db: Conn) -> None:
    """No state falls through the table: each combination of facts meets a rule."""
    undecided = await db.fetch(
        """
        SELECT st, g, p, d, del
          FROM unnest($1::text[]) AS st,
               unnest(ARRAY[NULL, now() + interval '1 day', now() - interval '1 day']) AS g,
               unnest(ARRAY[NULL, now() + interval '1 day', now() - interval '1 day']) AS p,
               unnest(ARRAY[false, true]) AS d,
               unnest(ARRAY[false, true]) AS del
         WHERE (SELECT a.access FROM billing_access(st, g, p, d, del, now()) AS a) IS NULL
        """,
        sorted(STRIPE_SUBSCRIPTION_STATUSES | {"none"}),
    )
    assert undecided == []
