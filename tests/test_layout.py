"""The layout's contracts, read from the code's own imports (issue 13).

Dependencies point one way: the command line over the flows, the flows over the stages, the stages over
``features/`` and ``models/``, which never import ``detector``. ``LAYERS`` below is the order, lowest
first; a module may import its own package and any package of a lower layer, never a higher one (imports
inside functions count: a lazy import is still a dependency). The root package ``detector`` is the public
API, above every layer: no module of a subpackage imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS: list[set[str]] = [
    {"common", "tables"},  # shared infrastructure and the declared tables
    {"ingest"},  # files -> canonical tables
    {"report"},  # the HTML report (written by the batch and the nightly flows)
    {"detect"},  # features -> scores -> cases; the batch flow
    {"siem"},  # delivery
    {"review"},  # the review log, the case store, learning from verdicts
    {"nightly"},  # the workspace and the nightly flow
    {"investigate"},  # what a privacy officer reads and decides
    {"cli"},  # the thin shell
]
LAYER = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import of the project's own packages in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "detector":  # `from detector import x`: x may be a subpackage
                found += [(node.lineno, f"detector.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] in {"detector", "features", "models"}]


def _modules(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def test_every_detector_subpackage_has_a_layer_a_docstring_and_an_all() -> None:
    packages = {p.name for p in (REPO / "detector").iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(LAYER), "a new subpackage needs a place in LAYERS"
    for package in packages:
        tree = ast.parse((REPO / "detector" / package / "__init__.py").read_text())
        assert ast.get_docstring(tree), f"detector/{package}/__init__.py has no docstring"
        names = [
            t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
        ]
        assert "__all__" in names, f"detector/{package}/__init__.py has no __all__"


def test_dependencies_point_one_way() -> None:
    wrong = []
    for path in _modules("detector"):
        parts = path.relative_to(REPO / "detector").parts
        if len(parts) == 1:  # detector/__init__.py (the public API) and __main__.py sit above every layer
            continue
        own = LAYER[parts[0]]
        for line, name in _imports(path):
            pieces = name.split(".")
            if pieces[0] != "detector":
                continue
            target = pieces[1] if len(pieces) > 1 else "<the public API, detector/__init__.py>"
            if target not in LAYER:
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {name}: not a layered subpackage")
            elif LAYER[target] > own:
                wrong.append(f"{path.relative_to(REPO)}:{line} ({parts[0]}) imports {name} (a higher layer)")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("folder", ["features", "models"])
def test_features_and_models_never_import_detector(folder: str) -> None:
    wrong = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in _modules(folder)
        for line, name in _imports(path)
        if name.split(".")[0] == "detector"
    ]
    assert not wrong, "\n".join(wrong)


def test_only_the_cli_imports_click() -> None:
    wrong = []
    for path in _modules("detector"):
        if path.relative_to(REPO / "detector").parts[0] == "cli":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n.split(".")[0] == "click" for n in names):
                wrong.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not wrong, "click outside detector/cli: " + ", ".join(wrong)


def test_the_contract_check_itself_sees_an_upward_import(tmp_path: Path) -> None:
    """The scan reads lazy imports inside functions too (a check that found nothing would pass forever)."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from detector.nightly.flow import nightly\n    return nightly\n")
    assert _imports(module) == [(2, "detector.nightly.flow")]


def test_the_public_api_names_callables_and_loads_them_on_first_use() -> None:
    import subprocess
    import sys

    import detector

    for name in detector.__all__:
        if name != "__version__":
            assert callable(getattr(detector, name)), name
    probe = "import sys, detector; print(sorted(m for m in sys.modules if m.startswith('detector.')))"
    cheap = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert cheap.stdout.strip() == "['detector.common', 'detector.common.version']", "a stage loaded eagerly"


def test_the_feature_modules_load_no_engine() -> None:
    """Issue 15: ``features/`` runs on DuckDB and on Spark, so importing it loads neither (the DuckDB path
    must not need pyspark, the Spark stage must not load DuckDB for its features)."""
    import subprocess
    import sys

    probe = (
        "import importlib, pkgutil, sys, features\n"
        "for m in pkgutil.iter_modules(features.__path__): importlib.import_module('features.' + m.name)\n"
        "print(len([m for m in sys.modules if m.startswith('features.')]), "
        "sorted({m.split('.')[0] for m in sys.modules} & {'duckdb', '_duckdb', 'pyspark', 'py4j'}))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    count, engines = loaded.stdout.strip().split(" ", 1)
    assert int(count) >= 15 and engines == "[]", loaded.stdout


def test_every_cli_command_appears_in_the_readme() -> None:
    import click

    from detector.cli import cli

    readme = (REPO / "README.md").read_text()

    def commands(group: click.Group, prefix: str) -> list[str]:
        found = []
        for name, command in group.commands.items():
            found.append(f"{prefix}{name}")
            if isinstance(command, click.Group):
                found += commands(command, f"{prefix}{name} ")
        return found

    missing = [c for c in commands(cli, "phi-detector ") if c not in readme]
    assert not missing, f"commands the README never shows: {missing}"


def test_the_public_api_list_and_its_table_agree() -> None:
    import detector

    assert set(detector.__all__) - {"__version__"} == set(detector._API)


def test_no_module_over_400_lines_and_no_function_over_60() -> None:
    """Findable code: a module holds one concern and a function one step. A function may run longer only
    when its docstring says why (``Long because ...``)."""
    long_modules, long_functions = [], []
    for folder in ("detector", "features", "models"):
        for path in _modules(folder):
            text = path.read_text()
            if text.count("\n") > 400:
                long_modules.append(f"{path.relative_to(REPO)}: {text.count(chr(10))} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > 60 and "Long because" not in (ast.get_docstring(node) or ""):
                        long_functions.append(f"{path.relative_to(REPO)}:{node.name}: {length} lines")
    assert not long_modules, long_modules
    assert not long_functions, long_functions


def test_the_version_is_the_packages_version() -> None:
    import tomllib

    import detector

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert detector.__version__ == project["version"]


def test_every_package_docstring_names_each_of_its_modules() -> None:
    """A newcomer reads a folder's ``__init__.py`` first: it names every module the folder holds."""
    packages = [p for p in (REPO / "detector").iterdir() if (p / "__init__.py").is_file()]
    unnamed = []
    for package in [*packages, REPO / "features", REPO / "models"]:
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
        for module in sorted(package.glob("*.py")):
            if module.stem != "__init__" and f"``{module.stem}``" not in doc:
                unnamed.append(str(module.relative_to(REPO)))
    assert not unnamed, f"modules their package's docstring does not name: {unnamed}"
