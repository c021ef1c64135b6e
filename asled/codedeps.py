"""The project's own source files a module runs: its import graph, read with `ast` (nothing is imported).

Both front-ends list these files as a step's dependencies (asled.stages), so editing one re-runs exactly
the steps whose code reaches it. Imports inside functions count (they run when the step calls them);
the catalogue's model targets do not appear in any import, so a step depends on the one model it builds
(added by the stage table), not on every model.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import asled

# Where the imported code lives: the checkout holding asled/ and baselines/.
SOURCE_ROOT = Path(asled.__file__).resolve().parents[1]
PACKAGES = ("asled", "baselines")


def module_file(module: str) -> Path | None:
    """`a.b.c` -> a/b/c.py or a/b/c/__init__.py under SOURCE_ROOT; None for a name that is not a module
    (e.g. the class in `from a.b import C`)."""
    base = SOURCE_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def direct_imports(module: str) -> tuple[str, ...]:
    """Project modules `module` imports anywhere in its body, with their parent packages (which run too)."""
    path = module_file(module)
    if path is None:
        return ()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            target = ".".join(part for part in (base, node.module or "") if part)
            found.append(target)
            found += [f"{target}.{alias.name}" for alias in node.names]
    ours = [name for name in found if name.split(".")[0] in PACKAGES]
    parents = [".".join(name.split(".")[:i]) for name in ours for i in range(1, name.count(".") + 1)]
    return tuple(dict.fromkeys(name for name in [*parents, *ours] if module_file(name) is not None))


@functools.cache
def closure(module: str) -> frozenset[str]:
    """`module`, its parent packages and everything they import from this project, transitively."""
    if module_file(module) is None:
        raise ValueError(f"{module}: not a module of this project (under {SOURCE_ROOT})")
    parts = module.split(".")
    seen: set[str] = set()
    todo = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    while todo:
        name = todo.pop()
        if name not in seen and module_file(name) is not None:
            seen.add(name)
            todo.extend(direct_imports(name))
    return frozenset(seen)


def source_files(modules: tuple[str, ...] | list[str]) -> list[str]:
    """The files of every module in the closures of `modules`, relative to SOURCE_ROOT, sorted."""
    names = set().union(*(closure(m) for m in modules)) if modules else set()
    return sorted(module_file(name).relative_to(SOURCE_ROOT).as_posix() for name in names)
