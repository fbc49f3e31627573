"""One results shape for every application, and the command that gathers them."""
import json

import pytest

from book.applications import __main__ as gather
from book.applications import results


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path)
    return tmp_path


def test_wilson_interval_matches_known_values():
    low, high = results.wilson_interval(81, 263)  # Newcombe (1998), example of a proportion
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert results.wilson_interval(0, 10)[0] == 0.0 and results.wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError, match="successes <= n"):
        results.wilson_interval(11, 10)


def test_a_row_outside_its_interval_or_of_an_unknown_application_is_refused():
    with pytest.raises(results.ResultsError, match="outside its interval"):
        results.Result("qa", "t", "m", "x", 0.9, (0.1, 0.2), 10, False)
    with pytest.raises(results.ResultsError, match="unknown application 'poetry'"):
        results.Result("poetry", "t", "m", "x", 0.1, None, 10, False)
    with pytest.raises(results.ResultsError, match="value is nan"):
        results.Result("qa", "t", "m", "x", float("nan"), None, 10, False)


def test_written_results_read_back_and_gather(results_dir, capsys):
    rows = [results.proportion("qa", "one fact", "exact match", "GPT", 90, 100),
            results.proportion("qa", "one fact", "exact match", "last place", 30, 100, is_baseline=True)]
    path = results.write_results("qa", rows, wall_seconds=1.25, argv=["--seed", "0"], program="python -m x",
                                 settings={"steps": 10})
    assert path == results_dir / "qa.json"
    payload = results.read_results("qa")
    assert payload["command"] == "python -m x --seed 0" and payload["settings"] == {"steps": 10}
    assert [row["value"] for row in payload["results"]] == [0.9, 0.3]
    assert gather.main(["--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["results"] == payload["results"]
    assert "qa" not in printed["missing"] and "code" in printed["missing"]
    table = results.results_table("qa")
    assert "last place (baseline)" in table and "0.900" in table


def test_a_damaged_results_file_is_one_clear_error(results_dir, capsys):
    (results_dir / "qa.json").write_text('{"results": [{"application": "qa"}]}')
    with pytest.raises(results.ResultsError, match="needs exactly the keys"):
        results.read_results("qa")
    assert gather.main([]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    (results_dir / "qa.json").write_text("not json")
    with pytest.raises(results.ResultsError, match="cannot be read"):
        results.read_results("qa")
    with pytest.raises(results.ResultsError, match="missing: run the command"):
        results.read_results("code")


def test_a_table_with_a_width_wraps_long_names_and_keeps_every_figure():
    rows = [results.proportion("code", "functions, all", "pass@1", "a method with a very long name " * 3, 3, 10),
            results.proportion("code", "functions, all", "pass@1", "short", 9, 10, is_baseline=True)]
    rows = [r.to_dict() for r in rows]
    table = results.format_rows(rows, width=60)
    assert max(map(len, table.splitlines())) <= 60
    assert "0.300" in table and "0.900" in table and "short (baseline)" in table
    assert table.count("n=10") == 2
    with pytest.raises(results.ResultsError, match="width"):
        results.format_rows(rows, width=30)
