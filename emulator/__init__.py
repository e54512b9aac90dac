"""A reference stand-in for dify-plugin-daemon: Dify's dispatch contract, served from real
SDK plugins in one Python process."""

__version__ = "0.1.0"

__all__ = ["__version__"]
