"""ghostwatch: follows up, politely and exactly once, with clients who went silent."""

__version__ = "0.1.0"
