"""queue/ is a source root: `import queue` must stay the standard library."""

import subprocess
import sys


def test_stdlib_queue_is_not_shadowed() -> None:
    code = (
        "import queue, asyncio, raxx_queue; "
        "assert hasattr(queue, 'SimpleQueue'), queue.__file__; "
        "import concurrent.futures.thread; "
        "print(queue.__file__, raxx_queue.__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    stdlib_path, package = result.stdout.split()
    assert "site-packages" not in stdlib_path
    assert not stdlib_path.endswith("queue/__init__.py")
    assert package == "raxx_queue"


def test_asyncio_thread_pool_works_beside_the_package() -> None:
    code = (
        "import asyncio, raxx_queue.app\n"
        "async def main():\n"
        "    return await asyncio.to_thread(lambda: 41 + 1)\n"
        "print(asyncio.run(main()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"
