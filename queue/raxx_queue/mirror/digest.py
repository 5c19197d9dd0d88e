"""The drift check between Queue's mirror and Raptor's copy: buckets of customers, a digest
of each (docs/mirror.md specifies the algorithm for Raptor to compute the same).

A customer's bucket out of N (a power of two) is the first four bytes of the SHA-256 of
its `queue_customer_id` (UTF-8), read as a big-endian unsigned integer, modulo N. A
bucket's digest is the SHA-256, in lowercase hex, of the lines `<id>:<version>\\n` of its
rows sorted by id (byte order); an empty bucket's is the SHA-256 of nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from raxx_queue.db.pool import Connection
from raxx_queue.mirror.outbox import REQUEUE_SET

MAX_BUCKETS = 4096
EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()

# The bucket of a row of `billing_subscription_mirror AS m` joined with HASHED, $1
# being N: the first four bytes of sha256(id), big-endian, modulo N.
HASHED = (
    "CROSS JOIN LATERAL (SELECT sha256(convert_to(m.queue_customer_id, 'UTF8')) AS h) AS hashed"
)
BUCKET_OF_ROW = """((  (get_byte(hashed.h, 0)::bigint << 24) | (get_byte(hashed.h, 1)::bigint << 16)
    | (get_byte(hashed.h, 2)::bigint << 8) | get_byte(hashed.h, 3)::bigint) % $1)"""

BUCKET_DIGESTS = f"""
SELECT bucket, count(*) AS rows,
       encode(sha256(convert_to(string_agg(
           queue_customer_id || ':' || version || E'\\n', ''
           ORDER BY queue_customer_id COLLATE "C"), 'UTF8')), 'hex') AS digest
  FROM (SELECT m.queue_customer_id, m.version, {BUCKET_OF_ROW} AS bucket
          FROM billing_subscription_mirror AS m {HASHED}) AS keyed
 GROUP BY bucket
"""  # noqa: S608 - constant expressions

# Re-queue one bucket's rows, in key order ($2: the bucket).
REQUEUE_BUCKET = f"""
WITH chosen AS (
    SELECT m.queue_customer_id
      FROM billing_subscription_mirror AS m {HASHED}
     WHERE {BUCKET_OF_ROW} = $2
     ORDER BY m.queue_customer_id
       FOR UPDATE OF m
)
UPDATE billing_subscription_mirror AS m{REQUEUE_SET}
  FROM chosen
 WHERE m.queue_customer_id = chosen.queue_customer_id
"""  # noqa: S608 - constant expressions


@dataclass(frozen=True)
class BucketDigest:
    bucket: int
    rows: int
    digest: str


def is_bucket_count(buckets: int) -> bool:
    """A power of two from 1 to 4096."""
    return 1 <= buckets <= MAX_BUCKETS and buckets & (buckets - 1) == 0


def bucket_of(queue_customer_id: str, buckets: int) -> int:
    """The bucket of a customer, as BUCKET_OF_ROW computes it."""
    head = hashlib.sha256(queue_customer_id.encode()).digest()[:4]
    return int.from_bytes(head, "big") % buckets


async def bucket_digests(conn: Connection, buckets: int) -> list[BucketDigest]:
    """Every bucket's row count and digest, the empty ones included, in bucket order."""
    found = {
        record["bucket"]: BucketDigest(record["bucket"], record["rows"], record["digest"])
        for record in await conn.fetch(BUCKET_DIGESTS, buckets)
    }
    return [found.get(k, BucketDigest(k, 0, EMPTY_DIGEST)) for k in range(buckets)]


async def requeue_bucket(conn: Connection, bucket: int, buckets: int) -> int:
    """Queue a push of every row in the bucket; returns how many."""
    status = await conn.execute(REQUEUE_BUCKET, buckets, bucket)
    return int(status.rsplit(" ", 1)[-1])
