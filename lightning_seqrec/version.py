"""The installed distribution's version, read from its metadata so that pyproject.toml is its one source."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lightning-seqrec")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
