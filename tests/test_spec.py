"""Plugin spec text form and parameter validation."""
import pytest

from usable import SpecError, create, format_spec, parse_spec


def test_round_trip():
    s = parse_spec("mlp:hidden=25+15+10,batch_norm=false")
    assert s.name == "mlp" and s.params == {"hidden": "25+15+10", "batch_norm": "false"}
    assert str(s) == "mlp:hidden=25+15+10,batch_norm=false"
    assert parse_spec(str(s)) == s
    assert format_spec("pid") == "pid"
    assert str(parse_spec("timm:resnet18,drop=0")) == "timm:resnet18,drop=0"


def test_values_are_typed_and_defaulted():
    mlp = create("decoders", "mlp:hidden=7+3,batch_norm=no")
    assert mlp.hidden == [7, 3] and mlp.batch_norm is False
    assert create("decoders", "mlp").hidden == [25, 15, 10]
    sched = create("schedules", "exp:gamma=0.5")
    assert sched(0, 10) == 0.0 and sched(1, 10) == 0.5 and sched(2, 10) == 0.75


@pytest.mark.parametrize("text, needles", [
    ("pid:taks=and", ["source 'pid'", "unknown parameter 'taks'", "Did you mean task"]),
    ("pid:task=nand", ["parameter 'task'", "'nand'", "allowed values", "rdnxor"]),
    ("pid:n=many", ["parameter 'n'", "'many'", "not a valid int"]),
    ("pid:task", ["takes no positional value"]),
    ("pid:task=and,task=xor", ["given twice"]),
    ("pid:task=and,n", ["'n' is not key=value"]),
])
def test_bad_source_specs(text, needles):
    with pytest.raises(SpecError) as err:
        create("sources", text)
    for needle in needles:
        assert needle in str(err.value), str(err.value)


def test_bad_choice_on_divergence():
    with pytest.raises(SpecError) as err:
        create("divergences", "l1:reduction=max")
    assert "allowed values: sum, mean" in str(err.value)


def test_cli_reports_spec_errors_in_one_line():
    from click.testing import CliRunner
    from usable.cli import make_cli
    out = CliRunner().invoke(make_cli(), ["run", "rine", "--source", "pid:task=and", "--decoder", "mlp:hiden=5"])
    assert out.exit_code == 2 or out.exit_code == 1
    assert "Error: decoder 'mlp': unknown parameter 'hiden'. Did you mean hidden?" in out.output
    assert "Traceback" not in out.output
