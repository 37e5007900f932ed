from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.db import transaction

from core import audit
from core.role_changes import grant_role
from lifecycle.models import RegisteredModel, RiskTier


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def roles(self, create: bool, extracted: list[str] | None, **kwargs: object) -> None:
        self.save()
        for name in extracted or []:
            grant_role(self, name, actor=None, justification="test fixture")


class RegisteredModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RegisteredModel

    @classmethod
    def _create(cls, model_class: type[RegisteredModel], *args: Any, **kwargs: Any) -> RegisteredModel:
        # governed state: the row and its audit event (with its content hash) in one transaction
        with transaction.atomic():
            registered = model_class.objects.create(*args, **kwargs)
            audit.record(audit.MODEL_REGISTERED, actor=None, target=registered, data={"name": registered.name})
        return registered

    name = factory.Sequence(lambda n: f"credit-model-{n}")
    title = "Credit risk scoring"
    description = "Scores loan applications."
    risk_tier = RiskTier.MEDIUM
    owner = factory.SubFactory(UserFactory)
