"""Meta-tests: the architecture's rules, each checked on the real tree and shown to fail on a
deliberately broken input, plus every hook spec tested and documented in CONTRIBUTING.md.

Rules: no plugin imports another plugin; built-in plugins use only names in ``usable.__all__``;
no import circle in the core; the core imports no plugin and nothing in it imports the CLI;
``import usable`` and the CLI's listing commands import neither torch nor xarray.
"""
from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import usable
import usable.hookspecs as hookspecs

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core" / "usable"
PLUGINS = ROOT / "plugins"
PLUGIN_PACKAGES = sorted(p.name for p in PLUGINS.iterdir() if (p / "__init__.py").exists())


def imports(source: str) -> list[tuple[str, list[str], int]]:
    """(module, imported names, level) of every import statement, nested ones included."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(a.name, [], 0) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.module or "", [a.name for a in node.names], node.level))
    return out


# ------------------------------------------------------------------------------------ rule 1
def cross_plugin_imports(files: dict[str, str], own: str, plugins: list[str]) -> list[str]:
    """Imports of another plugin's package in the files of plugin ``own``."""
    bad = []
    for path, src in files.items():
        for module, _, level in imports(src):
            top = module.split(".")[0]
            if level == 0 and top in plugins and top != own:
                bad.append(f"{path}: imports {module}")
    return bad


def _plugin_files(name: str) -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for p in (PLUGINS / name).rglob("*.py")}


def test_no_plugin_imports_another_plugin():
    for name in PLUGIN_PACKAGES:
        assert cross_plugin_imports(_plugin_files(name), name, PLUGIN_PACKAGES) == []
    broken = {"usable_dib/x.py": "def f():\n    from usable_nc.metric import load\n", "usable_dib/y.py": "import usable_dib\n"}
    assert cross_plugin_imports(broken, "usable_dib", PLUGIN_PACKAGES) == ["usable_dib/x.py: imports usable_nc.metric"]


# ------------------------------------------------------------------------------------ rule 2
def private_core_uses(files: dict[str, str], public: set[str]) -> list[str]:
    """Uses of the core outside ``usable.__all__``: ``usable.<module>`` imports, ``from usable
    import <private>`` and ``usable.<private>`` attribute access."""
    bad = []
    for path, src in files.items():
        for module, names, level in imports(src):
            if level == 0 and module.startswith("usable."):
                bad.append(f"{path}: imports {module}")
            elif level == 0 and module == "usable":
                bad += [f"{path}: usable.{n} is not public" for n in names if n not in public]
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "usable" \
                    and node.attr not in public:
                bad.append(f"{path}: usable.{node.attr} is not public")
    return bad


def test_builtin_plugins_use_only_the_public_api():
    public = set(usable.__all__)
    for name in PLUGIN_PACKAGES:
        assert private_core_uses(_plugin_files(name), public) == []
    broken = {"p.py": "from usable.loop import fit\nfrom usable import fit, secret\nimport usable\nusable.hidden\n"}
    assert private_core_uses(broken, public) == ["p.py: imports usable.loop", "p.py: usable.secret is not public",
                                                 "p.py: usable.hidden is not public"]
    for name in usable.__all__:  # and everything public really exists (plugin-provided names: once installed)
        plugin_name = usable._FROM_PLUGINS.get(name)
        if plugin_name is None or usable.get_manager().plugin(plugin_name) is not None:
            assert hasattr(usable, name), name


# ------------------------------------------------------------------------------------ rule 3
def core_graph(files: dict[str, str], package: str = "usable") -> dict[str, set[str]]:
    """module -> core modules it imports (top-level and inside functions)."""
    modules = {Path(p).stem for p in files}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for path, src in files.items():
        me = Path(path).stem
        for module, names, level in imports(src):
            if level == 1:
                targets = [module.split(".")[0]] if module else [n for n in names if n in modules] or ["__init__"]
            elif level == 0 and module.split(".")[0] == package:
                targets = [module.split(".")[1]] if "." in module else ["__init__"]
            else:
                continue
            graph[me] |= {t for t in targets if t in modules and t != me}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None
    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def _core_files() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for p in CORE.glob("*.py")}


def test_no_import_circle_in_the_core_and_nothing_imports_the_cli():
    graph = core_graph(_core_files())
    assert find_cycle(graph) is None
    assert [m for m, targets in graph.items() if "cli" in targets] == []
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    broken = {"core/usable/loop.py": "def f():\n    from .cli import main\n", "core/usable/cli.py": "from .loop import fit\n"}
    assert find_cycle(core_graph(broken)) == ["cli", "loop", "cli"]


def test_the_core_imports_no_plugin():
    for path, src in _core_files().items():
        assert not [m for m, _, level in imports(src) if level == 0 and m.split(".")[0] in PLUGIN_PACKAGES], path


def test_factories_do_not_share_a_name_with_a_submodule():
    """``from .arrays import ...`` inside a factory named ``arrays`` would replace the factory
    by the submodule on the package (Python sets the attribute): a measured, silent breakage."""
    for name in PLUGIN_PACKAGES:
        init = ast.parse((PLUGINS / name / "__init__.py").read_text())
        functions = {n.name for n in init.body if isinstance(n, ast.FunctionDef)}
        submodules = {p.stem for p in (PLUGINS / name).glob("*.py")} - {"__init__"}
        assert not functions & submodules, (name, functions & submodules)


# ------------------------------------------------------------------------------------ start-up
HEAVY = ("torch", "xarray", "pandas", "numpy", "zarr", "matplotlib", "dask", "sklearn")
PROBE = """
import sys
from usable import hookimpl, Param
heavy = {m for m in %r if m in sys.modules}
assert not heavy, ("import usable", heavy)
from usable.cli import main
for argv in (["--help"], ["list", "sources"], ["plugins"], ["sweep", "--help"], ["results", "--help"]):
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code in (0, None), (argv, exc.code)
    heavy = {m for m in %r if m in sys.modules}
    assert not heavy, (argv, heavy)
print("light")
"""


def test_import_and_listing_commands_stay_light():
    out = subprocess.run([sys.executable, "-c", PROBE % (HEAVY, HEAVY)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("light")


# ------------------------------------------------------------------------------------ hooks
def _hookspecs():
    return {name: fn for name, fn in vars(hookspecs).items()
            if callable(fn) and name.startswith("register_") and hasattr(fn, "usable_spec")}


def test_there_are_six_hooks():
    assert sorted(_hookspecs()) == ["register_commands", "register_decoders", "register_divergences",
                                    "register_metrics", "register_schedules", "register_sources"]


def test_every_hook_is_documented_with_its_signature():
    text = (ROOT / "CONTRIBUTING.md").read_text()
    for name, fn in _hookspecs().items():
        signature = f"def {name}{inspect.signature(fn)}"
        assert signature in text, f"CONTRIBUTING.md lacks `{signature}`"


def test_every_hook_is_implemented_by_a_test_plugin():
    """The third-party distribution used in tests/test_plugins.py implements every hook."""
    from thirdparty import PLUGIN_CODE
    for name in _hookspecs():
        assert f"def {name}(" in PLUGIN_CODE, f"no test plugin implements {name}"
    tests = (ROOT / "tests" / "test_plugins.py").read_text()
    for used in ("copy_bits", "logistic", "sqdiff", "half", "count_sources", "hello"):
        assert used in tests
