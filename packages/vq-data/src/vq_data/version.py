"""The package version, in its own module so writers can stamp manifests without importing the package root."""

__version__ = "0.1.0"
