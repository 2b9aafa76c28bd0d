"""What every CLI test checks of a user mistake: exit code 2, one line on stderr, no traceback."""
from __future__ import annotations


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]
