"""streamfm: streaming Factorization Machines and Locally Linear FMs."""

__version__ = "0.1.0"
