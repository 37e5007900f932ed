from __future__ import annotations

from core.errors import DomainError


class IntegrationError(DomainError):
    """A webhook endpoint was refused; the message says why and how to fix it."""
