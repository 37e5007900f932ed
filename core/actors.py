"""Who acts: the one type every service function, rule and audit event takes its actor as.

An actor is one of
- a person: a Django user (in person, or through an API key bound to them);
- a client: an API key bound to no user (serving.authentication.ApiClient), with no role;
- an anonymous visitor (django's AnonymousUser), who may read what is public and nothing else;
- the system (None): a Celery task, a periodic sweep, a management command acting on its own.

They share the few attributes the domain asks of them, so `Actor` is a Protocol over those (a
string or a model that is not a user is a type error) or None for the system."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class Principal(Protocol):
    """A person, a client key or an anonymous visitor: what the domain may ask of any of them."""

    @property
    def pk(self) -> Any: ...

    @property
    def is_authenticated(self) -> bool: ...

    def get_username(self) -> str: ...


# None is the system acting on its own (recorded as "system" in the audit trail).
Actor: TypeAlias = Principal | None


def pk_of(actor: Actor) -> Any:
    """The primary key behind `actor`: a user's, None for the system (a client key's is None too)."""
    return actor.pk if actor is not None else None


def person(actor: Actor) -> User:
    """The user behind `actor`, for a change that names its author in a row (a foreign key to the
    user table). The role checks before such a change let only people through; anything else
    here is a programming error."""
    from django.contrib.auth import get_user_model

    if not isinstance(actor, get_user_model()):
        raise TypeError(f"{actor!r} is not a person (a user); this change is made by people only")
    return actor


def username_of(actor: Actor) -> str:
    """The name a row keeps of who acted: the user's (or client key's) username, "system" for None."""
    return actor.get_username() if actor is not None else "system"
