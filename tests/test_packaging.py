"""The repository as an installable package: the wheel ``pip install .`` builds carries both console scripts,
the studio's browser files and requirements.txt as its dependencies, and nothing else; installed into a fresh
venv, ``toonmatte`` and ``toonmatte-studio`` run from any folder. Every third-party package the product imports
is declared in requirements.txt, and Gradio is pinned to one minor version."""
from __future__ import annotations

import ast
import configparser
import email.parser
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from conftest import REPO

PRODUCT = ("toonmatte", "annotate", "app.py")
"""What a user runs: the engine, the studio and the Space's entry file (not tests, benchmarks or scripts)."""
FIRST_PARTY = {"toonmatte", "annotate", "app"}
SCRIPTS = {"toonmatte": "toonmatte.cli:main", "toonmatte-studio": "annotate.web.main:main"}
BROWSER_FILES = {"annotate/canvas.js", "annotate/canvas.css", "annotate/web/shortcuts.js"}
SOURCES = ("pyproject.toml", "requirements.txt", "README.md", "app.py", "toonmatte", "annotate", "tests",
           "benchmarks", "scripts", "docs")
"""Copied to build from, so the build's own build/ and egg-info land there, not in the checkout."""


def requirements() -> list[Requirement]:
    lines = (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [Requirement(line.split("#")[0]) for line in lines if line.split("#")[0].strip()]


def third_party_imports(source: str) -> set[str]:
    """Top-level names of the absolute imports in ``source`` that are neither the standard library nor ours."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - FIRST_PARTY


def undeclared(imports: set[str], declared: set[str]) -> dict[str, str]:
    """Each imported module that no declared distribution provides -> why (its distributions, or not installed)."""
    providers = metadata.packages_distributions()
    missing = {}
    for module in sorted(imports):
        distributions = {canonicalize_name(name) for name in providers.get(module, [])}
        if not distributions:
            missing[module] = "no installed distribution provides it"
        elif not distributions & declared:
            missing[module] = f"provided by {', '.join(sorted(distributions))}, not in requirements.txt"
    return missing


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel ``pip install .`` would install, built from a copy of the checkout."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info", ".pytest_cache")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        elif path.is_file():
            shutil.copy2(path, source / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "--wheel-dir", str(base / "dist"), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    [built] = (base / "dist").glob("toonmatte-*.whl")
    return built


def dist_info(archive: zipfile.ZipFile, name: str) -> str:
    [path] = [entry for entry in archive.namelist() if entry.endswith(f".dist-info/{name}")]
    return archive.read(path).decode("utf-8")


def test_wheel_has_both_console_scripts_and_their_targets_exist(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        entry_points = configparser.ConfigParser()
        entry_points.read_string(dist_info(archive, "entry_points.txt"))
        names = set(archive.namelist())
    assert dict(entry_points["console_scripts"]) == SCRIPTS
    for target in SCRIPTS.values():
        module, function = target.split(":")
        assert f"{module.replace('.', '/')}.py" in names
        tree = ast.parse((REPO / f"{module.replace('.', '/')}.py").read_text(encoding="utf-8"))
        assert function in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_wheel_carries_the_studios_browser_files_and_no_tests_or_benchmarks(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        top_level = set(dist_info(archive, "top_level.txt").split())
        for name in BROWSER_FILES:
            assert archive.read(name) == (REPO / name).read_bytes()
    assert top_level == {"toonmatte", "annotate"}
    roots = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert roots == {"toonmatte", "annotate"}, roots
    shipped = {name for name in names if name.endswith(".py")}
    checked_in = {path.relative_to(REPO).as_posix() for package in ("toonmatte", "annotate")
                  for path in (REPO / package).rglob("*.py")}
    assert shipped == checked_in  # every module of both packages, subpackages included


def test_wheel_requires_exactly_requirements_txt(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        message = email.parser.Parser().parsestr(dist_info(archive, "METADATA"))
    assert sorted(map(str, map(Requirement, message.get_all("Requires-Dist")))) == sorted(map(str, requirements()))
    assert message["Name"] == "toonmatte"


def test_gradio_is_pinned_to_the_minor_version_the_tests_run() -> None:
    [pin] = [requirement for requirement in requirements() if requirement.name == "gradio"]
    running = Version(metadata.version("gradio"))
    assert pin.specifier.contains(running)
    assert not pin.specifier.contains(f"{running.major}.{running.minor + 1}.0")
    assert not pin.specifier.contains(f"{running.major}.{max(running.minor - 1, 0)}.0")
    assert not pin.specifier.contains(f"{running.major + 1}.0.0")


def test_every_third_party_import_of_the_product_is_declared() -> None:
    declared = {canonicalize_name(requirement.name) for requirement in requirements()}
    files = [path for name in PRODUCT for path in ([REPO / name] if name.endswith(".py")
                                                   else sorted((REPO / name).rglob("*.py")))]
    assert len(files) > 50
    imports = set().union(*(third_party_imports(path.read_text(encoding="utf-8")) for path in files))
    assert {"torch", "numpy", "cv2", "PIL", "gradio"} <= imports  # the walk sees the product's imports
    assert undeclared(imports, declared) == {}


def test_the_import_check_catches_an_undeclared_package() -> None:
    source = "import os\nimport numpy as np\nfrom PIL import Image\nfrom . import sibling\nimport yaml.loader\n"
    imports = third_party_imports(source)
    assert imports == {"numpy", "PIL", "yaml"}
    assert set(undeclared(imports, {"numpy", "pillow"})) == {"yaml"}
    assert undeclared({"not_a_module_anyone_installed"}, set()) == {
        "not_a_module_anyone_installed": "no installed distribution provides it"}


@pytest.mark.timeout(300)
def test_installed_commands_run_from_any_folder(wheel: Path, tmp_path: Path) -> None:
    """``pip install`` into a fresh venv (torch and the rest from this interpreter's site-packages) puts both
    commands on the venv's PATH; run outside the checkout, they use the installed copy."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    done = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                           str(wheel)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(command), cwd=outside, env=env, capture_output=True, text=True, timeout=120)

    assert shutil.which("toonmatte", path=env["PATH"]) == str(bin_dir / "toonmatte")
    cli = run("toonmatte", "--help")
    assert cli.returncode == 0 and cli.stdout.startswith("usage: toonmatte ") and "predict" in cli.stdout, cli.stderr
    studio = run("toonmatte-studio", "--help")
    assert studio.returncode == 0 and studio.stdout.startswith("usage: toonmatte-studio"), studio.stderr
    assert "--dataset-root" in studio.stdout
    failed = run("toonmatte", "split", str(outside / "missing"))  # main returns 1; the script exits with it
    assert failed.returncode == 1 and failed.stderr.startswith("error: "), failed.stderr
    probe = ("import annotate.canvas as canvas, annotate.web.shortcuts as shortcuts\n"
             "print(canvas.__file__)\n"
             "assert '<style>' in canvas.head() and '<script>' in canvas.head() and shortcuts.head()\n")
    found = run(str(bin_dir / "python"), "-c", probe)
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).is_relative_to(venv)
