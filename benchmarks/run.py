"""Measure the book's code on this machine; every figure is a ratio of two timings from the same run.

    python benchmarks/run.py            # everything, including each chapter's execution time
    python benchmarks/run.py --quick    # the kernels only, in under two minutes
    python benchmarks/run.py --json     # machine-readable: {"results": [{"name", "ratio", "a", "b", "unit"}]}
    python benchmarks/run.py --save benchmarks/results.json   # what the Performance appendix shows
    python benchmarks/run.py --only threads --update benchmarks/results.json   # one measurement again
    python benchmarks/run.py --only memory threads            # some of the measurements

Each result compares ``a`` with ``b`` (``ratio = a / b``, larger is better for the book's version):
- training throughput of the book's GPT against the same model computing attention head by head
  (Chapter 2's ``LoopedMultiHeadAttention``), and against itself under ``torch.compile``;
- generation speed with the KV cache against recomputing every position;
- a MAML meta-step over 25 sinusoid tasks with ``vmap`` against a Python loop, and first-order
  against second-order;
- a MetaGPT meta-iteration (Chapter 6's GPT and meta-batch, second and first order, through
  ``book.maml``'s autograd engine) against one training step over the same windows: the cost
  of MAML's arithmetic (here the ratio is a cost multiple: smaller is cheaper);
- training on two data-parallel processes (``torchrun``) against one process using every core;
- the commands' thread settings against PyTorch's default, OMP_WAIT_POLICY=PASSIVE and one
  thread, on an idle machine and on one busy with other work (the ratio is a cost; the target is 1.5 at most);
- the peak memory of training on a generated text file against the file's size (100 MB, and 1 GB
  in the full run; here the ratio is a cost: smaller is better);
- each chapter notebook's execution time against the three-minute budget (full run only).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from book import maml  # noqa: E402
from book.attention import LoopedMultiHeadAttention  # noqa: E402
from book.experiments import sinusoid  # noqa: E402
from book.generate import generate  # noqa: E402
from book.model import GPT, GPTConfig  # noqa: E402
from book.presets import get_preset  # noqa: E402
from book.training import make_optimizer  # noqa: E402

NOTEBOOK_BUDGET_S = 180.0


def result(name, a, b, unit, note=""):
    return {"name": name, "ratio": round(a / b, 3), "a": round(a, 3), "b": round(b, 3), "unit": unit, "note": note}


def best_of(repeats, measure):
    """The fastest of several runs: the least disturbed by whatever else the machine is doing."""
    return min(measure() for _ in range(repeats))


# ---------------------------------------------------------------------------------- training

class LoopedAttentionAdapter(nn.Module):
    """Stands in for a GPT block's attention, computing it with Chapter 2's per-head loop."""

    def __init__(self, fused_attention: nn.Module, config: GPTConfig):
        super().__init__()
        self.looped = LoopedMultiHeadAttention(config.d_model, config.n_head, causal=True, bias=config.bias)
        with torch.no_grad():  # the two layouts agree: rows [q heads; k heads; v heads]
            self.looped.in_proj.weight.copy_(fused_attention.qkv.weight)
            self.looped.out_proj.weight.copy_(fused_attention.proj.weight)
            if config.bias:
                self.looped.in_proj.bias.copy_(fused_attention.qkv.bias)
                self.looped.out_proj.bias.copy_(fused_attention.proj.bias)

    def forward(self, x, cache=None, layer=0):
        return self.looped(x)[0]


def looped_copy(model: GPT) -> GPT:
    looped = GPT(model.config)
    looped.load_state_dict(model.state_dict())
    for block in looped.blocks:
        block.attn = LoopedAttentionAdapter(block.attn, model.config)
    return looped


def training_tokens_per_second(model, config, batch_size, steps, warmup=3):
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(config.vocab_size, (batch_size, config.context_length), generator=generator)
    y = torch.randint(config.vocab_size, (batch_size, config.context_length), generator=generator)
    optimizer = make_optimizer(model, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.99))

    def step():
        _, loss = model(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch_size * config.context_length * steps / (time.perf_counter() - start)


def bench_training(quick):
    preset = get_preset("nanogpt-cpu")
    config = GPTConfig(vocab_size=65, **preset.model)
    batch = preset.training.batch_size
    steps, repeats = (10, 2) if quick else (30, 3)
    torch.manual_seed(0)
    fused = GPT(config)
    looped = looped_copy(fused)
    fused_tps = best_of(repeats, lambda: training_tokens_per_second(fused, config, batch, steps))
    looped_tps = best_of(repeats, lambda: training_tokens_per_second(looped, config, batch, steps))
    return [result("training: fused attention vs per-head loop", fused_tps, looped_tps, "tokens/s",
                   "nanogpt-cpu model, forward + backward + AdamW step")]


def bench_compile():
    """Run last: compilation starts worker processes that can disturb the other measurements."""
    preset = get_preset("nanogpt-cpu")
    config = GPTConfig(vocab_size=65, **preset.model)
    batch, steps, repeats = preset.training.batch_size, 30, 3
    torch.manual_seed(0)
    eager = GPT(config)
    eager_tps = best_of(repeats, lambda: training_tokens_per_second(eager, config, batch, steps))
    compiled = torch.compile(GPT(config))
    compiled_tps = best_of(repeats, lambda: training_tokens_per_second(compiled, config, batch, steps, warmup=5))
    return [result("training: torch.compile vs eager", compiled_tps, eager_tps, "tokens/s",
                   "nanogpt-cpu model; compilation time excluded")]


# -------------------------------------------------------------------------------- generation

def bench_generation(quick):
    config = GPTConfig(vocab_size=65, n_layer=4, n_head=4, d_model=128, context_length=256)
    torch.manual_seed(0)
    model = GPT(config).eval()
    prompt = torch.randint(config.vocab_size, (1, 8))
    new_tokens = 500

    def tokens_per_second(use_cache):
        start = time.perf_counter()
        generate(model, prompt, max_new_tokens=new_tokens, do_sample=False, use_cache=use_cache)
        return new_tokens / (time.perf_counter() - start)

    # Each cached step is so short that the machine's noise shows: take the median of several runs.
    repeats = 3 if quick else 5
    cached = statistics.median(tokens_per_second(True) for _ in range(repeats))
    uncached = statistics.median(tokens_per_second(False) for _ in range(repeats))
    return [result("generation: KV cache vs recomputing", cached, uncached, "tokens/s",
                   "500 new tokens, context 256, 4 layers x 128 dims, greedy, median of runs")]


# ------------------------------------------------------------------------------------- MAML

def bench_maml(quick):
    torch.manual_seed(0)
    network = sinusoid.make_network()
    params = maml.parameters_of(network)
    tasks, _, _ = sinusoid.sample_tasks(sinusoid.META_BATCH, 10, 10, torch.Generator().manual_seed(0))
    repeats = 5 if quick else 20

    def seconds_per_step(**options):
        def measure():
            start = time.perf_counter()
            maml.maml_gradient(network, params, tasks, loss_fn=nn.functional.mse_loss,
                               inner_lr=sinusoid.INNER_LR, **options)
            return time.perf_counter() - start
        measure()  # warm-up
        return statistics.median(measure() for _ in range(repeats))

    vmapped = seconds_per_step(vectorize=True)
    looped = seconds_per_step(vectorize=False)
    first_order = seconds_per_step(vectorize=True, first_order=True)
    milliseconds = 1000.0
    return [
        result("MAML meta-step: vmap vs loop over tasks", looped * milliseconds, vmapped * milliseconds, "ms per step",
               "25 sinusoid tasks, 1 inner step, second order; ratio = loop time / vmap time"),
        result("MAML meta-step: first vs second order", vmapped * milliseconds, first_order * milliseconds,
               "ms per step", "vmap; ratio = second-order time / first-order time"),
    ]


def bench_metagpt(quick):
    """Chapter 6's meta-iteration against one plain training step on the same 32 windows, one thread."""
    from book.experiments import metagpt

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the experiment runs
    try:
        model = metagpt.make_model(0)
        optimizer = make_optimizer(model, lr=1e-4, weight_decay=0.01, betas=(0.9, 0.99))
        tasks = metagpt.meta_batch("dialects", 0, 0)
        repeats = 5 if quick else 20

        def milliseconds(step):
            def measure():
                start = time.perf_counter()
                step(model, optimizer, tasks)
                return time.perf_counter() - start
            for _ in range(2):
                measure()  # warm-up
            return 1000.0 * statistics.median(measure() for _ in range(repeats))

        # The speakers' pretrain-maml objective: first order, the support loss before adaptation kept.
        first_order_step = functools.partial(metagpt.maml_step, inner_lr=metagpt.PRETRAIN_INNER_LR["speakers"],
                                             first_order=True,
                                             support_weight=metagpt.PRETRAIN_SUPPORT_WEIGHT["speakers"])
        training = milliseconds(metagpt.pretraining_step)
        second = milliseconds(metagpt.maml_step)
        first = milliseconds(first_order_step)
    finally:
        torch.set_num_threads(threads)
    windows = metagpt.META_BATCH * (metagpt.SUPPORT + metagpt.QUERY)
    note = (f"{metagpt.META_BATCH} tasks x {metagpt.SUPPORT}+{metagpt.QUERY} windows of {metagpt.WINDOW}; "
            f"b = one AdamW step over the same {windows} windows; ratio = cost multiple (target <= 3.5)")
    return [
        result("MetaGPT meta-iteration, second order, vs one training step", second, training, "ms", note),
        result("MetaGPT meta-iteration, first order + support loss, vs one training step", first, training, "ms",
               note),
    ]


# ------------------------------------------------------------------------------ data parallel

def bench_data_parallel(quick):
    """``python -m book.train`` on one process using both cores, against two torchrun processes of one thread each."""
    import re
    import tempfile

    iters = 40 if quick else 150
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as folder:
        def ms_per_iter(launcher, threads, out):
            command = [*launcher, "-m", "book.train", "--data", "corpus", "--preset", "nanogpt-cpu",
                       "--iters", str(iters), "--eval-interval", str(iters), "--final-eval-iters", "1",
                       "--out", str(pathlib.Path(folder) / out), "--quiet"]
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
            output = subprocess.run(command, capture_output=True, text=True, check=True, env=env, cwd=ROOT).stdout
            return float(re.search(r"ms_per_iter=([0-9.]+)", output).group(1))

        single = ms_per_iter([sys.executable], cores, "single")
        double = ms_per_iter([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"],
                             max(cores // 2, 1), "double")
    tokens = 12 * 64 * 1000.0  # the preset's global batch, per second
    return [result("training: 2 DDP processes vs 1 process", tokens / double, tokens / single, "tokens/s",
                   f"nanogpt-cpu preset, same global batch (12 x 64), {iters} steps; "
                   f"1 process x {cores} threads vs 2 processes x {max(cores // 2, 1)} thread(s)")]


# ----------------------------------------------------------------------------- threads and OpenMP

THREAD_PROBE = """
import json, statistics, sys, time
import book.cpu  # noqa: F401  (the commands' settings, when the probe asks for them)
import torch
from book.generate import generate
from book.model import GPT, GPTConfig
from book.presets import get_preset
from book.training import optimizer_for



def step_ms(model, optimizer, x, y, steps):  # median ms of a training step, after two warm-up steps
    times = []
    for _ in range(steps + 2):
        start = time.perf_counter()
        _, loss = model(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[2:])


steps = int(sys.argv[1])
threads_at_start = torch.get_num_threads()
training_threads = book.cpu.training_threads()
if training_threads is not None:  # as python -m book.train does
    torch.set_num_threads(training_threads)
preset = get_preset("nanogpt-cpu")
config = GPTConfig(vocab_size=65, **preset.model)
torch.manual_seed(0)
model = GPT(config)
x = torch.randint(65, (preset.training.batch_size, config.context_length))
train_ms = step_ms(model, optimizer_for(model, preset.training), x, torch.randint(65, x.shape), steps)
prompt = torch.zeros(1, 1, dtype=torch.long)
if book.cpu.generation_threads() is not None:  # as python -m book.generate does
    torch.set_num_threads(book.cpu.generation_threads())
generation_threads = torch.get_num_threads()
generate(model.eval(), prompt, max_new_tokens=10, do_sample=False)
token_times = []
for _ in range(7):  # a busy machine makes single runs noisy: the median of seven
    start = time.perf_counter()
    generate(model, prompt, max_new_tokens=60, do_sample=False)
    token_times.append((time.perf_counter() - start) / 60)
# A notebook's workload: Chapter 4's training run (2 layers, 64 wide, context 32, batch 16), in the
# threads the environment gives (the notebooks of Chapters 2-8 set one thread themselves).
torch.set_num_threads(threads_at_start)
small = GPT(GPTConfig(vocab_size=65, context_length=32, n_layer=2, n_head=4, d_model=64, bias=False))
x = torch.randint(65, (16, 32))
small_optimizer = torch.optim.AdamW(small.parameters(), lr=3e-3)
notebook_ms = step_ms(small, small_optimizer, x, torch.randint(65, x.shape), 4 * steps)
print(json.dumps({"train_ms": train_ms, "generate_ms": 1000 * statistics.median(token_times),
                  "threads": generation_threads, "notebook_ms": notebook_ms}))
"""


def thread_settings():
    """The settings compared: name -> environment. The book's is what its commands set (book.cpu)."""
    cores = os.cpu_count() or 1
    return {
        f"PyTorch's default ({cores} threads, spinning)": {"BOOK_CPU_DEFAULTS": "0"},
        f"OMP_WAIT_POLICY=PASSIVE ({cores} threads)": {"BOOK_CPU_DEFAULTS": "0", "OMP_WAIT_POLICY": "PASSIVE"},
        "one thread": {"BOOK_CPU_DEFAULTS": "0", "OMP_NUM_THREADS": "1"},
        "the book's commands": {},
    }


def bench_threads(quick):
    """Each thread setting against the best one, on an idle machine and on one busy with other work.

    "Busy" is simulated: one CPU-burning process per core runs for the duration of that half. The
    ratio of a row is the setting's time over the best setting's time in the same condition (a
    cost: 1.0 is the best; the target for the book's setting is 1.5 at most).
    """
    cores = os.cpu_count() or 1
    steps = 5 if quick else 30
    settings = thread_settings()
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT", "BOOK_CPU_DEFAULTS")}

    def measure():
        timings = {}
        for name, extra in settings.items():
            output = subprocess.run([sys.executable, "-c", THREAD_PROBE, str(steps)], capture_output=True, text=True,
                                    check=True, cwd=ROOT, env={**environment, "PYTHONPATH": str(ROOT), **extra}).stdout
            timings[name] = json.loads(output.strip().splitlines()[-1])
            print(f"threads: {name}: {timings[name]}", file=sys.stderr, flush=True)
        return timings

    print("threads: idle machine", file=sys.stderr, flush=True)
    idle = measure()
    print(f"threads: busy machine ({cores} CPU-burning processes)", file=sys.stderr, flush=True)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    try:
        busy = measure()
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    results = []
    for condition, timings in (("idle machine", idle), (f"busy machine ({cores} other processes)", busy)):
        for workload, key in (("training step", "train_ms"), ("generated token", "generate_ms")):
            best = min(timing[key] for timing in timings.values())
            listing = "; ".join(f"{name}: {timing[key]:.3g}" for name, timing in timings.items())
            for name in (f"PyTorch's default ({cores} threads, spinning)", "the book's commands"):
                results.append(result(f"threads, {condition}, ms per {workload}: {name} vs the best setting",
                                      timings[name][key], best, "ms",
                                      f"nanogpt-cpu model; ratio = cost multiple (target <= 1.5); {listing}"))
        # The notebooks: every chapter that trains or times a model sets one thread.
        best = min(timing["notebook_ms"] for timing in timings.values())
        listing = "; ".join(f"{name}: {timing['notebook_ms']:.3g}" for name, timing in timings.items())
        for name, label in (("one thread", "one thread (the chapters' setting)"),
                            (f"PyTorch's default ({cores} threads, spinning)",) * 2):
            results.append(result(f"threads, {condition}, ms per notebook training step: {label} "
                                  "vs the best setting", timings[name]["notebook_ms"], best, "ms",
                                  "Chapter 4's model (2 layers x 64, context 32, batch 16); ratio = cost multiple "
                                  f"(target <= 1.5); {listing}"))
    return results


# ------------------------------------------------------------------------------------ memory

PEAK_MEMORY = """
import json, resource, sys
from book.train import main
status = main(sys.argv[1:])
print(json.dumps({"status": status, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_text(path: pathlib.Path, size: int) -> None:
    """A text file of ``size`` bytes: the Shakespeare corpus, over and over."""
    from book.data import load_corpus

    piece = load_corpus().text.encode()
    with path.open("wb") as handle:
        for start in range(0, size, len(piece)):
            handle.write(piece[:size - start])


def bench_memory(quick):
    """Peak memory of ``python -m book.train`` on a generated text file, against the file's size.

    The training process reports its own peak resident memory (``ru_maxrss``), which counts the
    Python interpreter and PyTorch (about 0.3 GB) as well as the data.
    """
    import tempfile

    sizes = [100_000_000] if quick else [100_000_000, 1_000_000_000]
    results = []
    for size in sizes:
        with tempfile.TemporaryDirectory() as folder:
            path = pathlib.Path(folder) / "text.txt"
            write_text(path, size)
            command = [sys.executable, "-c", PEAK_MEMORY, "--data", str(path), "--preset", "tiny", "--iters", "20",
                       "--eval-interval", "20", "--final-eval-iters", "1", "--out", str(pathlib.Path(folder) / "out"),
                       "--quiet"]
            started = time.perf_counter()
            output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT,
                                    env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
            seconds = time.perf_counter() - started
        report = json.loads(output.strip().splitlines()[-1])
        megabytes = size / 1e6
        results.append(result(f"training memory: peak vs text size, {megabytes:,.0f} MB of text", report["peak_mb"],
                              megabytes, "MB", f"python -m book.train --preset tiny, 20 steps, {seconds:.0f} s in all; "
                              "ratio = peak resident memory / text size (smaller is better)"))
    return results


# -------------------------------------------------------------------------------- notebooks

def bench_notebooks():
    results = []
    for path in sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb")):
        output = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "notebook_timing.py"), str(path)],
                                capture_output=True, text=True, check=True, env={**os.environ, "TQDM_DISABLE": "1"})
        timing = json.loads(output.stdout.strip().splitlines()[-1])
        results.append(result(f"notebook {path.stem}: budget vs execution time", NOTEBOOK_BUDGET_S,
                              timing["seconds"], "s", f"peak kernel memory {timing['peak_mb']:.0f} MB"))
    return results


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}


# In the order they run: compilation last, since its worker processes can disturb the others.
BENCHMARKS = {
    "training": bench_training, "generation": bench_generation, "maml": bench_maml, "metagpt": bench_metagpt,
    "data-parallel": bench_data_parallel, "memory": bench_memory, "threads": bench_threads,
    "notebooks": lambda quick: bench_notebooks(), "compile": lambda quick: bench_compile(),
}
FULL_RUN_ONLY = {"notebooks", "compile"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="kernels only, fewer repetitions (under two minutes)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--save", type=pathlib.Path, help="also write the JSON to this file")
    parser.add_argument("--update", type=pathlib.Path, metavar="FILE",
                        help="replace the rows of these measurements in a saved results file, keeping the others")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), metavar="NAME",
                        help=f"run only these measurements: {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    names = args.only or [name for name in BENCHMARKS if not args.quick or name not in FULL_RUN_ONLY]
    results = []
    for name in names:
        results += [{**row, "benchmark": name} for row in BENCHMARKS[name](args.quick)]
    report = {"machine": machine(), "quick": args.quick, "seconds": round(time.perf_counter() - started, 1),
              "results": results}
    if args.save:
        args.save.write_text(json.dumps(report, indent=2) + "\n")
    if args.update:
        saved = json.loads(args.update.read_text())
        # A measurement's old rows go, renamed ones included: every row names the measurement it came from.
        fresh = {r["name"] for r in results}
        saved["results"] = [r for r in saved["results"]
                            if r["name"] not in fresh and r.get("benchmark") not in names] + results
        saved.setdefault("updates", []).append({"only": names, "machine": report["machine"],
                                                "seconds": report["seconds"]})
        args.update.write_text(json.dumps(saved, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        width = max(len(r["name"]) for r in results)
        for r in results:
            print(f"{r['name']:<{width}}  {r['ratio']:8.2f}x   a={r['a']:<10g} b={r['b']:<10g} {r['unit']}")
        print(f"({report['seconds']} s on {report['machine']['cpu']}, {report['machine']['cores']} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
