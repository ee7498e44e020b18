"""Genesis: integration and audit layer of an algorithmic-trading system."""

__version__ = "0.1.0"
