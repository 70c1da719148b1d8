"""privaudit: audit personalized language models for privacy and safety before they ship."""

__version__ = "0.1.0"
