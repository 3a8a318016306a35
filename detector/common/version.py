"""The tool's version, written into every summary, SIEM event and report (``detector.__version__``)."""

__version__ = "0.1.0"
__all__ = ["__version__"]
