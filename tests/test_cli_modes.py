"""The global -q/-v options and the machine-readable listings (`plugins --json`, `list KIND --json`)."""
import json
import warnings

import pytest
from click.testing import CliRunner

import usable
from usable.cli import make_cli

RUN = ["run", "usable", "--source", "pid:n=200", "--decoder", "linear", "--epochs", "2", "--threads", "1"]


def test_plugins_json_lists_every_builtin_with_what_it_provides():
    out = CliRunner().invoke(make_cli(), ["plugins", "--json"])
    assert out.exit_code == 0, out.output
    listing = json.loads(out.stdout)
    by_name = {p["name"]: p for p in listing["plugins"]}
    assert listing["clashes"] == []
    assert by_name["pid"]["distribution"] == "usable" and by_name["pid"]["error"] is None
    assert by_name["pid"]["provides"] == {"sources": ["pid"]}
    assert set(by_name["info"]["provides"]["metrics"]) >= {"usable", "rine", "redundancy_matrix"}
    assert "pid" in by_name["info"]["requires"]  # rine_table builds on the pid plugin


def test_list_json_gives_each_parameter():
    out = CliRunner().invoke(make_cli(), ["list", "metrics", "rine*", "--json"])
    assert out.exit_code == 0, out.output
    entries = {e["name"]: e for e in json.loads(out.stdout)}
    assert sorted(entries) == ["rine", "rine_table"]
    params = {p["name"]: p for p in entries["rine"]["params"]}
    assert entries["rine"]["plugin"] == "info" and params["per_class"] == {
        "name": "per_class", "type": "bool", "default": "false", "choices": None,
        "help": "also report redundant information per class (dim class)"}


def test_quiet_prints_results_only():
    loud = CliRunner().invoke(make_cli(), RUN)
    quiet = CliRunner().invoke(make_cli(), ["-q", *RUN])
    assert loud.exit_code == quiet.exit_code == 0
    assert "usable: 2/2" in loud.stderr and quiet.stderr == ""  # the progress line
    assert quiet.stdout == loud.stdout  # the same table
    assert "usable_information" in quiet.stdout


def test_quiet_silences_notices_and_warnings(capsys):
    from usable.cli import cli
    seen = []

    @cli.command("_noisy", hidden=True)
    def noisy():
        usable.notice("a notice")
        warnings.warn("a warning", UserWarning)
        seen.append(True)

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            quiet = CliRunner().invoke(cli, ["-q", "_noisy"])
            assert quiet.exit_code == 0 and quiet.stderr == "" and caught == []
            loud = CliRunner().invoke(cli, ["_noisy"])
            assert loud.stderr == "a notice\n" and [str(w.message) for w in caught] == ["a warning"]
        assert seen == [True, True]
    finally:
        cli.commands.pop("_noisy")


def test_verbose_shows_the_traceback_of_a_user_error():
    plain = CliRunner().invoke(make_cli(), ["run", "rine", "--source", "pdi:task=and"])
    assert plain.exit_code == 1 and plain.output.startswith("Error: unknown source 'pdi'")
    verbose = CliRunner().invoke(make_cli(), ["-v", "run", "rine", "--source", "pdi:task=and"])
    assert isinstance(verbose.exception, usable.UnknownName)  # raised, so the traceback is printed


@pytest.mark.parametrize("flag", ["-q", "--quiet", "-v", "--verbose"])
def test_the_flags_are_global_options(flag):
    out = CliRunner().invoke(make_cli(), [flag, "list", "decoders", "lin*"])
    assert out.exit_code == 0 and out.stdout.startswith("linear")
