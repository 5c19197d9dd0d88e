"""A separate process appending and sealing audit rows (for the concurrency test)."""

from __future__ import annotations

import asyncio
import sys

from raxx_queue.audit.chain import seal_pending
from raxx_queue.audit.log import append_action
from raxx_queue.db.pool import Database


async def main(url: str, key: str, count: int, name: str) -> None:
    db = Database(url, max_size=4)
    await db.open()
    try:
        for i in range(count):
            async with db.transaction() as tx:
                await append_action(
                    tx,
                    actor="system",
                    action=f"test.{name}",
                    queue_customer_id=f"c{i % 7}",
                    summary={"i": i, "process": name},
                )
            if i % 5 == 0:
                await seal_pending(db, key.encode())
        while await seal_pending(db, key.encode()):
            pass
    finally:
        await db.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
