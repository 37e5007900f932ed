"""The layers, bottom to top, and the system check that keeps name lookups inside them.

import-linter (pyproject.toml) catches an import that runs up the layers; a lookup by name,
`apps.get_model("integrations", "MlflowImport")` from compliance, travels up without an import, so
`manage.py check` (and the suite) reads every app module's source for `get_model` calls whose
target app is named by string constants, and fails for a lookup into a higher layer (core.E002).
The test `tests/core/test_layers.py` keeps LAYERS equal to the import-linter contract.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core import checks

# Bottom to top: each package may use only those before it.
LAYERS: tuple[str, ...] = (
    "core",
    "lifecycle",
    "governance",
    "serving",
    "monitoring",
    "compliance",
    "integrations",
    "config",
)


@dataclass(frozen=True)
class Lookup:
    path: Path
    line: int
    source: str  # the package the code is in
    target: str  # the app it looks up

    def __str__(self) -> str:
        return f"{self.path}:{self.line} looks up a model of {self.target}, a layer above {self.source}"


def _constant_app(call: ast.Call) -> str | None:
    """The app label of `get_model("app", "Model")` or `get_model("app.Model")`, if constant."""
    if not call.args or not isinstance(call.args[0], ast.Constant) or not isinstance(call.args[0].value, str):
        return None
    label: str = call.args[0].value
    return label.split(".", 1)[0] if len(call.args) == 1 else label


def upward_lookups(root: Path | None = None) -> list[Lookup]:
    """Every `get_model` call in the layers' modules (migrations aside) naming a higher layer."""
    base = Path(root or settings.BASE_DIR)
    rank = {name: i for i, name in enumerate(LAYERS)}
    found: list[Lookup] = []
    for package in LAYERS:
        for path in sorted((base / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if name != "get_model":
                    continue
                target = _constant_app(node)
                if target in rank and rank[target] > rank[package]:
                    found.append(Lookup(path.relative_to(base), node.lineno, package, target))
    return found


@checks.register()
def check_no_upward_lookups(app_configs: object = None, **kwargs: object) -> list[checks.CheckMessage]:
    return [
        checks.Error(
            str(lookup),
            hint="Move the model or the code down a layer (docs/design.md, Layout).",
            id="core.E002",
        )
        for lookup in upward_lookups()
    ]
