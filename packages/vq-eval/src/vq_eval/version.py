"""Package version, in its own module so modules can record it without importing the package root."""

__version__ = "0.1.0"
