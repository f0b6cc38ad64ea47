"""The package reads the way it runs: short files, no work at import time, an engine that stands alone,
and no module reaching into another's private names."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tinytorch"
FILES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 500


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _calls(node: ast.AST):
    """Calls that run when `node` is evaluated: not those inside a lambda, which run when it is called."""
    if isinstance(node, ast.Lambda):
        return
    if isinstance(node, ast.Call):
        yield node
    for child in ast.iter_child_nodes(node):
        yield from _calls(child)


def _import_time_work(body: list[ast.stmt], where: str):
    """(line, what) for every statement of a module or class body that does more than define or import."""
    for index, node in enumerate(body):
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Pass)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue  # a docstring (or a string used as a comment)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            # Decorators run once, as part of the definition (they register or wrap it); default values
            # are computed at import time, so they must not call anything.
            for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
                for call in _calls(default):
                    yield call.lineno, f"a default value of {node.name}() calls {ast.unparse(call.func)}"
            continue
        if isinstance(node, ast.Try) and all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in node.body):
            # an optional import: `try: import resource` / `except ImportError: resource = None`
            yield from _import_time_work([s for h in node.handlers for s in h.body] + node.orelse + node.finalbody, where)
            continue
        if isinstance(node, ast.ClassDef):
            yield from _import_time_work(node.body, f"class {node.name}")
            continue
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            if node.value is None:
                continue
            for call in _calls(node.value):
                yield node.lineno, f"{where} computes {ast.unparse(node)[:60]!r} by calling {ast.unparse(call.func)}"
            continue
        yield node.lineno, f"{where} runs a {type(node).__name__} statement"


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_package_files_stay_short(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, (
        f"{_rel(path)} has {lines} lines (at most {MAX_LINES}); split its chapter's export by concept "
        "(`#| export other.target` on the cells that belong in another file)")


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_importing_a_package_module_does_no_work(path):
    """Only definitions and imports at module level: a table built by a call is made lazily or written out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = list(_import_time_work(tree.body, "the module"))
    assert not found, f"{_rel(path)} does work when imported: " + "; ".join(f"line {line}: {what}" for line, what in found)


def _imports(path: Path):
    """(module imported, names, line) for every import in a file, anywhere in it, relative ones resolved."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            yield base, [alias.name for alias in node.names], node.lineno


ENGINE = [p for p in FILES if _module_name(p).startswith("tinytorch.core.")]


@pytest.mark.parametrize("path", ENGINE, ids=_rel)
def test_the_engine_imports_no_layer_file(path):
    """tinytorch.core (Tensor, primitives, autograd) builds on nothing above it: a primitive's backward rule
    sits next to its forward, so the engine never imports a layer, loss or kernel module."""
    outside = [(name, line) for name, _, line in _imports(path)
               if name.split(".")[0] == "tinytorch" and not name.startswith("tinytorch.core")]
    assert not outside, f"{_rel(path)} (the engine) imports " + ", ".join(f"{n} (line {l})" for n, l in outside)


def test_the_engine_is_tensor_primitives_and_autograd():
    assert {p.stem for p in ENGINE} >= {"tensor", "function", "autograd"}


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_no_module_imports_another_modules_private_names(path):
    private = [(base, name, line) for base, names, line in _imports(path)
               for name in names if base.split(".")[0] == "tinytorch" and name.startswith("_")]
    assert not private, f"{_rel(path)} imports private names: " + ", ".join(
        f"{name} from {base} (line {line})" for base, name, line in private) + "; make the name public or keep its use in its module"


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_no_module_reads_another_modules_private_names(path):
    """`module._name` where `module` is an imported tinytorch module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tinytorch"):
            for alias in node.names:
                if (PACKAGE.parent / Path(*f"{node.module}.{alias.name}".split("."))).with_suffix(".py").is_file() \
                        or (PACKAGE.parent / Path(*f"{node.module}.{alias.name}".split("."))).is_dir():
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tinytorch"):
                    modules.add(alias.asname or alias.name.split(".")[0])
    reads = [(node.value.id, node.attr, node.lineno) for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
             and node.attr.startswith("_") and not node.attr.startswith("__")]
    assert not reads, f"{_rel(path)} reads private names of other modules: " + ", ".join(
        f"{m}.{a} (line {l})" for m, a, l in reads)


def test_the_checks_above_catch_what_they_forbid(tmp_path):
    """The rules themselves, on small examples (a check that cannot fail checks nothing)."""
    tree = ast.parse("import numpy as np\nTABLE = np.arange(3)\nf = lambda: np.zeros(2)\n"
                     "class A:\n    x = len('ab')\n    def g(self, y=np.float32(1)):\n        return y\n"
                     "for i in range(2):\n    pass\n")
    found = [line for line, _ in _import_time_work(tree.body, "the module")]
    assert found == [2, 5, 6, 8], found
