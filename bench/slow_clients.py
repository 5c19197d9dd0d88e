"""Slow and oversized clients against a running Queue (docs/security.md, finding 11).

    python -m bench.slow_clients http://127.0.0.1:8000 [--connections 250] [--seconds 30]

Opens the connections (half send nothing, half trickle a request head one header line
a second), then prints how many the server still holds open after 5, 15 and `seconds`
seconds; then sends a 4 MB header and prints how the server answered (a reset: it
closed, with the 431 and most of the header unread). Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from urllib.parse import urlsplit

HEAD = b"POST /api/v1/billing/webhook HTTP/1.1\r\nHost: queue\r\n"


async def _slow_client(host: str, port: int, trickle: bool, closed: list[float]) -> None:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        if trickle:
            writer.write(HEAD)
        line = 0
        while True:
            if trickle:
                writer.write(f"X-Slow-{line}: 1\r\n".encode())
                await writer.drain()
                line += 1
            try:
                if await asyncio.wait_for(reader.read(1024), timeout=1.0) == b"":
                    break
            except TimeoutError:
                continue
    except (ConnectionError, OSError):
        pass
    finally:
        closed.append(time.monotonic() - started)
        writer.close()


async def _big_header(host: str, port: int) -> tuple[str, int]:
    reader, writer = await asyncio.open_connection(host, port)
    sent = 0
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: queue\r\nX-Big: ")
        while sent < 4 * 1024 * 1024:
            writer.write(b"a" * 65536)
            await writer.drain()
            sent += 65536
        writer.write(b"\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.readline(), timeout=10)
        return answer.decode(errors="replace").strip() or "closed", sent
    except (ConnectionError, OSError, TimeoutError) as error:
        return f"connection ended ({type(error).__name__})", sent
    finally:
        writer.close()


async def run(url: str, connections: int, seconds: float) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    closed: list[float] = []
    tasks = [
        asyncio.create_task(_slow_client(host, port, trickle=n % 2 == 1, closed=closed))
        for n in range(connections)
    ]
    started = time.monotonic()
    for checkpoint in (5.0, 15.0, seconds):
        await asyncio.sleep(max(0.0, started + checkpoint - time.monotonic()))
        print(
            f"after {checkpoint:4.0f} s: {connections - len(closed):4d} of {connections} still open"
        )
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    try:
        answer, sent = await asyncio.wait_for(_big_header(host, port), timeout=60)
    except TimeoutError:
        answer, sent = "no answer in 60 s (the server neither read nor closed)", -1
    # what was handed to the socket, loopback's kernel buffers (a few MB) included
    print(f"4 MB header: {answer!r}; {sent // 1024} KiB handed to the socket")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=250)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    asyncio.run(run(args.url, args.connections, args.seconds))


if __name__ == "__main__":
    main()
