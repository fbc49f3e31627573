"""The benchmark runner's bookkeeping (--update replaces one measurement's rows and keeps the rest) and the
Performance appendix's tables of its results."""
import importlib.util
import json

import pytest

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
    renamed_row = {"name": "threads, idle: a setting no longer measured", "ratio": 2.0, "a": 2.0, "b": 1.0,
                   "unit": "ms", "note": "old", "benchmark": "threads"}
    saved.write_text(json.dumps({"machine": {"cpu": "x"}, "seconds": 10.0,
                                 "results": [old_thread_row, other_row, renamed_row]}))
    assert runner.main(["--only", "threads", "--update", str(saved)]) == 0
    updated = json.loads(saved.read_text())
    assert updated["results"] == [other_row] + [{**row, "benchmark": "threads"} for row in fresh]
    assert updated["machine"] == {"cpu": "x"} and updated["updates"][0]["only"] == ["threads"]
    assert "book's commands" in capsys.readouterr().out


def test_appendix_tables_put_each_row_in_its_group_and_order():
    from book.tooling import benchmark_tables

    rows = [
        {"name": "generation: KV cache vs recomputing", "a": 2000.0, "b": 250.0, "unit": "tokens/s",
         "ratio": 8.0, "note": "greedy"},
        {"name": "MAML meta-step: vmap vs loop", "a": 30.0, "b": 3.0, "unit": "ms per step", "ratio": 10.0,
         "note": "ratio = loop time / vmap time"},
        {"name": "meta-iteration vs one training step", "a": 75.0, "b": 25.0, "unit": "ms", "ratio": 3.0,
         "note": "b = one step; ratio = cost multiple"},
        {"name": "threads, idle machine, ms per training step: one thread vs the best setting", "a": 58.5,
         "b": 33.2, "unit": "ms", "ratio": 1.76,
         "note": "default: 33.2; one thread: 58.5; OMP_WAIT_POLICY=PASSIVE: 55.1"},
        {"name": "notebook 01: executed", "a": 180.0, "b": 9.0, "unit": "s", "ratio": 20.0, "note": "peak"},
    ]
    tables = benchmark_tables.tables({"results": rows})
    assert list(tables) == ["Speed-ups", "Costs", "Thread settings"]
    speed, cost, threads = tables.values()
    assert "| generation: KV cache vs recomputing | 2,000 | 250 | tokens/s | 8.00x |" in speed
    assert "| MAML meta-step: vmap vs loop | 3 | 30 | ms per step | 10.00x |" in speed  # the faster first
    assert "meta-iteration" in cost and "meta-iteration" not in speed and "notebook" not in speed + cost
    assert "second: one step" in cost
    assert "| idle machine | training step | one thread | 58.5 | 33.2 | 1.76x |" in threads
    assert "`OMP_WAIT_POLICY=PASSIVE` 55.1" in threads
    with pytest.raises(ValueError, match="unexpected name of a threads measurement: 'threads, odd'"):
        benchmark_tables.tables({"results": [dict(rows[3], name="threads, odd")]})
