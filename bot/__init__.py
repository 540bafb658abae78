"""stagingbot: one staging environment per pull request."""

__version__ = "0.1.0"
