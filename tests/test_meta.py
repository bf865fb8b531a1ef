"""Meta-tests: every hook spec is tested and documented in CONTRIBUTING.md with its exact signature."""
import inspect
from pathlib import Path

import usable.hookspecs as hookspecs

ROOT = Path(__file__).resolve().parents[1]


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
