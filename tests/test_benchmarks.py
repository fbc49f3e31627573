"""The benchmark runner's bookkeeping: --update replaces one measurement's rows and keeps the rest."""
import importlib.util
import json

from book.paths import ROOT


def load_runner():
    spec = importlib.util.spec_from_file_location("benchmark_runner", ROOT / "benchmarks" / "run.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    return runner


def test_update_replaces_the_rows_of_the_measurements_run_and_keeps_the_others(tmp_path, monkeypatch, capsys):
    runner = load_runner()
    fresh = [runner.result("threads, idle: the book's commands vs the best setting", 2.0, 1.0, "ms", "new")]
    monkeypatch.setitem(runner.BENCHMARKS, "threads", lambda quick: fresh)
    saved = tmp_path / "results.json"
    old_thread_row = {"name": fresh[0]["name"], "ratio": 9.0, "a": 9.0, "b": 1.0, "unit": "ms", "note": "old"}
    other_row = {"name": "memory: peak", "ratio": 1.3, "a": 1.3, "b": 1.0, "unit": "GB", "note": "kept"}
    saved.write_text(json.dumps({"machine": {"cpu": "x"}, "seconds": 10.0, "results": [old_thread_row, other_row]}))
    assert runner.main(["--only", "threads", "--update", str(saved)]) == 0
    updated = json.loads(saved.read_text())
    assert updated["results"] == [other_row] + fresh
    assert updated["machine"] == {"cpu": "x"} and updated["updates"][0]["only"] == ["threads"]
    assert "book's commands" in capsys.readouterr().out
