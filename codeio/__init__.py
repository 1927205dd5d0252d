"""codeio: CodeI/O and CodeI/O++ data factory (domain core, no Prefect imports)."""

__version__ = "0.1.0"
