"""django.contrib.admin with the product's site (core.admin_site); INSTALLED_APPS names this
class. Its own module: loading it must not import models before the registry is ready."""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class GovernanceAdminConfig(AdminConfig):
    default_site = "core.admin_site.GovernanceAdminSite"
