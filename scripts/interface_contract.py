"""An import-linter contract type: interface modules sit one layer above every domain module.

Interface modules are the ones a request or an operator enters by (views, APIs, admin, forms,
URLs, management commands); domain modules are all the others of the layers' packages. No domain
module may import an interface module, directly or through other modules. The interface modules
are recognised by name (the `interfaces` patterns, matched against the module's path below its
package), so a split or a new module is classed without editing a list. pyproject.toml names it
in `contract_types` and configures it."""

from __future__ import annotations

from fnmatch import fnmatchcase

from grimp import ImportGraph
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


def is_interface(module: str, containers: list[str], patterns: list[str]) -> bool:
    package, _, below = module.partition(".")
    if package not in containers or not below:
        return False
    return any(fnmatchcase(below, p) or fnmatchcase(below.rsplit(".", 1)[-1], p) for p in patterns)


class InterfacesOnTopContract(Contract):
    type_name = "interfaces_on_top"

    containers = fields.ListField(subfield=fields.StringField())
    interfaces = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        containers = list(self.containers)  # type: ignore[call-overload]
        patterns = list(self.interfaces)  # type: ignore[call-overload]
        ours = sorted(m for m in graph.modules if m.partition(".")[0] in containers and "." in m)
        interface = [m for m in ours if is_interface(m, containers, patterns)]
        domain = {m for m in ours if m not in interface and ".migrations" not in m}
        output.verbose_print(verbose, f"{len(interface)} interface modules, {len(domain)} domain modules")
        broken: list[list[str]] = []
        for target in interface:
            for importer in sorted(graph.find_upstream_modules(target) & domain):
                chain = graph.find_shortest_chain(importer=importer, imported=target)
                if chain:
                    broken.append(list(chain))
        return ContractCheck(kept=not broken, warnings=[], metadata={"chains": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for chain in check.metadata["chains"]:
            output.print_error(f"{chain[0]} (a domain module) reaches {chain[-1]} (an interface):")
            output.indent_cursor()
            output.print_error(" -> ".join(chain), bold=False)
            output.new_line()
