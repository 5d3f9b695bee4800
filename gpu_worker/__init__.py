"""ONE node worker: connects to a coordinator, serves models with local engines, signs what it did."""

__version__ = "0.1.0"
