"""loadharness: distributed HTTP load testing with honest numbers."""

__version__ = "0.1.0"
