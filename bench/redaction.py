"""Redaction time on adversarial input: the e-mail pattern before and after the fix.

    python -m bench.redaction

The pattern Queue used until the fix is kept here, as the reference it is measured
against: it is quadratic on a run of address characters followed by an `@`, so it is
timed on small inputs only and its time on 1 MiB is extrapolated (4 times per doubling).
"""

from __future__ import annotations

import re
import time

from raxx_queue.redaction import redact_emails

OLD_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
MIB = 1024 * 1024


def adversarial(size: int) -> str:
    return "a" * (size - 1) + "@"


def seconds(function: object, text: str) -> float:
    assert callable(function)
    started = time.perf_counter()
    function(text)
    return time.perf_counter() - started


def main() -> None:
    print("input: a run of address characters, then '@'")
    old = {
        size: seconds(lambda t: OLD_EMAIL.sub("", t), adversarial(size))
        for size in (8 * 1024, 16 * 1024, 32 * 1024)
    }
    for size, elapsed in old.items():
        print(f"before  {size // 1024:>5} KiB  {elapsed:9.3f} s")
    largest = max(old)
    estimate = old[largest] * (MIB / largest) ** 2
    print(f"before   1024 KiB  ~{estimate:8.0f} s (extrapolated, quadratic)")
    for size in (16 * 1024, 64 * 1024, MIB, 4 * MIB):
        print(f"after   {size // 1024:>5} KiB  {seconds(redact_emails, adversarial(size)):9.3f} s")


if __name__ == "__main__":
    main()
