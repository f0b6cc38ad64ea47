"""The generated package as a whole: chapter order in its imports, and NumPy as its only dependency."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tinytorch"
MANIFEST = json.loads((PACKAGE / "_manifest.json").read_text())["files"]


def _module_name(rel: str) -> str:
    return "tinytorch." + rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__")


# tinytorch.core.tensor -> "02", from the manifest's record of which chapter wrote each file.
CHAPTER_OF = {_module_name(rel): Path(entry["source"]).parent.name[:2] for rel, entry in MANIFEST.items()}


def _imports(path: Path, module: str, top_level_only: bool = False):
    """(imported module, line) for every import in a file, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                yield (f"{base}.{alias.name}" if f"{base}.{alias.name}" in CHAPTER_OF else base), node.lineno


@pytest.mark.parametrize("rel", sorted(MANIFEST))
def test_a_generated_module_imports_only_from_its_own_or_earlier_chapters(rel):
    module = _module_name(rel)
    chapter = CHAPTER_OF[module]
    for imported, line in _imports(PACKAGE / rel, module):
        if not imported.startswith("tinytorch") or imported == "tinytorch":
            continue  # `import tinytorch` inside a function reads the version at call time, after every chapter loaded
        assert imported in CHAPTER_OF or imported == "tinytorch.core", (
            f"tinytorch/{rel}:{line} imports {imported}, a hand-written package that gathers every chapter; "
            "import from the module that defines the name instead")
        if imported in CHAPTER_OF:
            assert CHAPTER_OF[imported] <= chapter, (
                f"tinytorch/{rel}:{line} (chapter {chapter}) imports {imported} from the later chapter "
                f"{CHAPTER_OF[imported]}: a chapter may only build on the ones before it")


def _third_party(name: str) -> bool:
    top = name.split(".")[0]
    return top not in sys.stdlib_module_names and top not in ("tinytorch", "numpy")


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_package_imports_numpy_alone_at_module_level(path):
    module = _module_name(path.relative_to(PACKAGE).as_posix())
    extra = [(name, line) for name, line in _imports(path, module, top_level_only=True) if _third_party(name)]
    assert not extra, f"{path.relative_to(ROOT)} imports {extra} when it loads; tinytorch depends on NumPy only " \
                      "(import plotting libraries inside the function that plots)"


def test_import_tinytorch_loads_no_plotting_cli_or_reference_library():
    code = ("import sys, tinytorch; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'rich', 'click', 'tito', 'torch', 'jupytext'}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert done.stdout.strip() == "[]", done.stdout
