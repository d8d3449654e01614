"""The layout's rules that import-linter (pyproject.toml) cannot see."""

import ast
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
PACKAGE = REPOSITORY / "bananaweb"


class FunctionBodyImports(ast.NodeVisitor):
    """Collects the imports found inside function and method bodies, nested or not."""

    def __init__(self) -> None:
        self.depth = 0
        self.imports: list[ast.Import | ast.ImportFrom] = []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        if self.depth:
            self.imports.append(node)

    visit_ImportFrom = visit_Import


def imported_names(node: ast.Import | ast.ImportFrom, path: Path) -> list[str]:
    """The absolute module names an import statement names, relative ones resolved."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not node.level:
        return [node.module or ""]
    package = list(path.relative_to(REPOSITORY).with_suffix("").parts[:-1])
    base = package[: len(package) - node.level + 1]
    return [".".join([*base, node.module] if node.module else base)]


def is_ours(name: str) -> bool:
    return name == "bananaweb" or name.startswith("bananaweb.")


def test_no_module_of_ours_imports_another_inside_a_function():
    """A late import hides a dependency from the reader and papers over an import
    cycle, which the no-cycles contract would otherwise report."""
    modules = [
        path for path in sorted(PACKAGE.rglob("*.py")) if "migrations" not in path.parts
    ]
    assert len(modules) > 10, f"found only {modules} under {PACKAGE}"

    offenders = []
    for path in modules:
        finder = FunctionBodyImports()
        finder.visit(ast.parse(path.read_text(), str(path)))
        offenders += [
            f"{path.relative_to(REPOSITORY)}:{node.lineno}: {ast.unparse(node)}"
            for node in finder.imports
            if any(is_ours(name) for name in imported_names(node, path))
        ]

    assert not offenders, (
        "Imports of our modules inside a function body:\n" + "\n".join(offenders)
    )


def test_the_import_finder_sees_nested_relative_and_plain_imports():
    source = (
        "import bananaweb.options\n"
        "def f():\n"
        "    import json\n"
        "    from bananaweb import tasks\n"
        "    def g():\n"
        "        from . import services\n"
        "class C:\n"
        "    async def m(self):\n"
        "        import bananaweb.models as m\n"
    )
    finder = FunctionBodyImports()
    finder.visit(ast.parse(source))
    path = PACKAGE / "gateway" / "views.py"
    assert [imported_names(node, path) for node in finder.imports] == [
        ["json"],
        ["bananaweb"],
        ["bananaweb.gateway"],
        ["bananaweb.models"],
    ]
