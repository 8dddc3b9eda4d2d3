"""The one failure the deploy command reports: a message a person can act on, printed without a traceback."""

from __future__ import annotations


class DeployError(Exception):
    """The deploy stopped. The message names what is wrong and what to do; it never contains a secret's value."""
