"""AudioMarathon-suite: long-form audio understanding and efficiency benchmark for audio LLMs."""

__version__ = "0.1.0"
