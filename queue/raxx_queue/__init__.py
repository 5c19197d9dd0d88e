"""Queue: the billing authority of the Raxx trading platform."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("raxx-queue")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
