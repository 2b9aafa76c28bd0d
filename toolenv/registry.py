"""All tools by name, suite, category and round; the built-in suites are found in `toolenv.suites`.

A suite is any module in that package exporting `TOOLS`, so adding a suite means adding a file. Names are
the model's only handle on a tool, so two tools with one name is an error, never a silent override.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Iterable, Iterator

from toolenv.spec import Tool
from toolenv.validation import check_spec

BUILTIN_SUITES = "toolenv.suites"


class RegistryError(ValueError):
    """A tool set that cannot be used as is: a duplicate name, a module without TOOLS, an uncallable spec."""


class Registry:
    """An immutable, ordered set of tools with lookups; cheap to build for one episode's tool subset."""

    def __init__(self, tools: Iterable[Tool], check_specs: bool = True):
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            if check_specs:
                _check(tool)
            if tool.name in self._tools:
                raise RegistryError(
                    f"duplicate tool name {tool.name!r}: defined by {_origin(self._tools[tool.name])} and by {_origin(tool)}"
                )
            self._tools[tool.name] = tool

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def get(self, name: str) -> Tool:
        """The tool by name; KeyError if there is none (the runner turns that into an unknown_tool observation)."""
        return self._tools[name]

    def subset(self, names: Iterable[str]) -> Registry:
        """The named tools only (an episode's tool set), without checking their specs again; KeyError for an unknown name."""
        return Registry((self.get(name) for name in names), check_specs=False)

    def names(self) -> list[str]:
        return list(self._tools)

    def by_suite(self, suite: str) -> list[Tool]:
        return [tool for tool in self if tool.spec.suite == suite]

    def by_category(self, category: str) -> list[Tool]:
        return [tool for tool in self if tool.spec.category == category]

    def by_round(self, round: int) -> list[Tool]:
        return [tool for tool in self if tool.spec.round == round]

    def up_to_round(self, round: int) -> list[Tool]:
        """Every tool introduced in rounds 1..round: what continual learning has seen after that round."""
        return [tool for tool in self if tool.spec.round is not None and tool.spec.round <= round]

    def suites(self) -> list[str]:
        return sorted({tool.spec.suite for tool in self})

    def categories(self) -> list[str]:
        return sorted({tool.spec.category for tool in self})

    def rounds(self) -> list[int]:
        return sorted({tool.spec.round for tool in self if tool.spec.round is not None})


def discover(package: str = BUILTIN_SUITES) -> Registry:
    """Import every module of `package` and gather the TOOLS each exports."""
    tools: list[Tool] = []
    for module_info in sorted(pkgutil.iter_modules(importlib.import_module(package).__path__), key=lambda info: info.name):
        if module_info.name.startswith("_"):
            continue
        module_name = f"{package}.{module_info.name}"
        module = importlib.import_module(module_name)
        exported = getattr(module, "TOOLS", None)
        if not isinstance(exported, (list, tuple)) or not all(isinstance(tool, Tool) for tool in exported):
            raise RegistryError(f"{module_name} must export TOOLS, a list of toolenv.spec.Tool")
        tools.extend(exported)
    return Registry(tools)


@functools.cache
def builtin_registry() -> Registry:
    """The built-in suites, discovered once per process."""
    return discover(BUILTIN_SUITES)


def _check(tool: Tool) -> None:
    try:
        check_spec(tool.spec)
    except ValueError as error:
        raise RegistryError(f"{_origin(tool)}: {error}") from None


def _origin(tool: Tool) -> str:
    """Where a tool came from, for error messages: its suite and the module that defines its callable."""
    module = getattr(tool.run, "__module__", None) or "unknown module"
    return f"suite {tool.spec.suite!r} ({module})" if tool.spec.suite else module
