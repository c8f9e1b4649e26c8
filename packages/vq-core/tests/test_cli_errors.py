"""FriendlyGroup: user errors become one ``Error:`` line (traceback only under -v); bugs keep theirs."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from vq_core import ConfigError
from vq_core.cli_errors import friendly_group, one_line


class _Custom(RuntimeError):
    pass


def _cli() -> click.Group:
    @click.group(cls=friendly_group(_Custom))
    @click.option("-v", "--verbose", is_flag=True)
    def main(verbose: bool) -> None:
        pass

    class Point(BaseModel):
        x: int

    @main.command()
    @click.argument("kind")
    def fail(kind: str) -> None:
        if kind == "config":
            raise ConfigError("bad field quantizer.codebook_size (run.yaml); use a positive integer")
        if kind == "pydantic":
            Point(x="nope")  # type: ignore[arg-type]
        if kind == "custom":
            raise _Custom("custom\nmessage")
        if kind == "key":
            raise KeyError("unknown preset 'huge'; known: ['tiny']")
        raise RuntimeError("a bug")

    return main


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("config", "Error: bad field quantizer.codebook_size (run.yaml); use a positive integer"),
        ("custom", "Error: custom message"),
        ("key", "Error: unknown preset 'huge'; known: ['tiny']"),
    ],
)
def test_user_errors_are_one_line_without_traceback(kind: str, expected: str) -> None:
    result = CliRunner().invoke(_cli(), ["fail", kind])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [expected]


def test_pydantic_errors_name_the_field_on_one_line() -> None:
    result = CliRunner().invoke(_cli(), ["fail", "pydantic"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: Point: x: ")


def test_verbose_prints_the_traceback_too() -> None:
    result = CliRunner().invoke(_cli(), ["-v", "fail", "config"])
    assert result.exit_code == 1
    assert "Traceback" in result.output and result.output.rstrip().endswith("use a positive integer")


def test_bugs_are_not_hidden() -> None:
    result = CliRunner().invoke(_cli(), ["fail", "bug"])
    assert isinstance(result.exception, RuntimeError) and "Error:" not in result.output


def test_one_line_collapses_whitespace() -> None:
    assert one_line(ValueError("a\n  b\tc")) == "a b c"
