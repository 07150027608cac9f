"""The peers: llama2.c's `run.c` and llama.cpp's `llama-bench`, built here, run on the same machine.

    python -m bench.peers --build               # build what is missing (llama.cpp: ~15 min on 2 cores)
    python -m bench.peers --build --rebuild     # build again from scratch
    python -m bench.peers --status              # what is built, where

Nothing of the peers' code lives in this repository. llama2.c's run.c is read from
../shared/peers/llama2.c/ (a pinned copy beside the worktrees, see its README) and compiled with the
flags its own README gives. llama.cpp comes from the package index as the source distribution of
`llama-cpp-python` (its tree is vendor/llama.cpp) and is built with CMake. The builds are cached
outside the repository, in ~/.cache/llamanuts/peers (or $LLAMANUTS_PEERS_CACHE), so the benchmark
builds them once per machine.

On CPUs with AMX, llama.cpp's repacked AMX path crashed on the machine the issue was written on, so
llama-bench always runs with `--repack 0` (the weights used as stored); on a CPU without AMX it
also runs with `--repack 1` (its default, weights repacked into CPU-specific layouts) and the
faster of the two is the peer's figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_PEERS = REPO.parent / "shared" / "peers"
LLAMA2C_SOURCE = SHARED_PEERS / "llama2.c" / "run.c"
LLAMA_CPP_PYTHON_VERSION = "0.3.36"


def cache_dir() -> Path:
    return Path(os.environ.get("LLAMANUTS_PEERS_CACHE", Path.home() / ".cache" / "llamanuts" / "peers"))


class PeerUnavailable(RuntimeError):
    """A peer cannot be built or run here; the message says why (the report prints it in the row)."""


# ---- llama2.c -------------------------------------------------------------------------------------


def llama2c_binary(build: bool = True, rebuild: bool = False) -> Path:
    """The `runomp` binary, compiled from ../shared/peers/llama2.c/run.c (cached by the source's hash).

    Build line from llama2.c's README: `gcc -Ofast -fopenmp -march=native run.c -lm -o runomp`.
    """
    if not LLAMA2C_SOURCE.exists():
        raise PeerUnavailable(f"llama2.c: {LLAMA2C_SOURCE} not found (the shared peers folder beside the repository)")
    digest = hashlib.sha256(LLAMA2C_SOURCE.read_bytes()).hexdigest()[:16]
    target = cache_dir() / "llama2.c" / digest
    binary = target / "runomp"
    if binary.exists() and not rebuild:
        return binary
    if not build:
        raise PeerUnavailable("llama2.c: not built (python -m bench.peers --build)")
    if shutil.which("gcc") is None:
        raise PeerUnavailable("llama2.c: gcc not found")
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(LLAMA2C_SOURCE, target / "run.c")
    command = ["gcc", "-Ofast", "-fopenmp", "-march=native", "run.c", "-lm", "-o", "runomp"]
    done = subprocess.run(command, cwd=target, capture_output=True, text=True)
    if done.returncode != 0:
        raise PeerUnavailable(f"llama2.c: {' '.join(command)} failed: {done.stderr.strip()[-500:]}")
    return binary


_ACHIEVED = re.compile(r"achieved tok/s:\s*([0-9.]+)")


def run_llama2c(model: Path, tokenizer: Path, threads: int, steps: int = 200, passive: bool = False) -> float:
    """llama2.c's own decode speed ("achieved tok/s", greedy, prompt "Once") on a llama2.c .bin.

    With `passive`, its OpenMP workers sleep between loops (OMP_WAIT_POLICY=PASSIVE) instead of
    libgomp's default spin: slower on a quiet machine, far faster on a busy one."""
    binary = llama2c_binary()
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["OMP_NUM_THREADS"] = str(threads)
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    command = [str(binary), str(model), "-z", str(tokenizer), "-n", str(steps), "-t", "0", "-i", "Once"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    except subprocess.TimeoutExpired:
        raise PeerUnavailable("llama2.c took more than 600 s (is the machine overloaded?)") from None
    found = _ACHIEVED.search(done.stderr + done.stdout)
    if done.returncode != 0 or not found:
        raise PeerUnavailable(f"llama2.c: {binary.name} failed: {(done.stderr or done.stdout).strip()[-300:]}")
    return float(found.group(1))


# ---- llama.cpp ------------------------------------------------------------------------------------


def _llama_cpp_tree() -> Path:
    return cache_dir() / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}" / "vendor" / "llama.cpp"


def llama_bench_binary(build: bool = False, rebuild: bool = False) -> Path:
    """llama.cpp's `llama-bench`, built from the llama-cpp-python source distribution when asked."""
    tree = _llama_cpp_tree()
    binary = tree / "build" / "bin" / "llama-bench"
    if binary.exists() and not rebuild:
        return binary
    if not build:
        raise PeerUnavailable("llama.cpp: not built (python -m bench.peers --build, about 15 minutes on 2 cores)")
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise PeerUnavailable(f"llama.cpp: {tool} not found")
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    if not tree.exists():
        sdist = root / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
        if not sdist.exists():
            print(f"downloading the llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} source distribution", file=sys.stderr)
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                  f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "-d", str(root)], root)
        with tarfile.open(sdist) as archive:
            archive.extractall(root, filter="data")
        if not tree.exists():
            raise PeerUnavailable(f"llama.cpp: {sdist.name} has no vendor/llama.cpp")
    if rebuild and (tree / "build").exists():
        shutil.rmtree(tree / "build")
    print("building llama.cpp (llama-bench), about 15 minutes on 2 cores", file=sys.stderr, flush=True)
    nice = ["nice", "-n", "10"] if shutil.which("nice") else []
    _run([*nice, "cmake", "-B", "build", "-DGGML_NATIVE=ON", "-DLLAMA_CURL=OFF", "-DCMAKE_BUILD_TYPE=Release"], tree)
    _run([*nice, "cmake", "--build", "build", f"-j{os.cpu_count() or 2}", "--target", "llama-bench"], tree)
    if not binary.exists():
        raise PeerUnavailable(f"llama.cpp: the build finished without {binary}")
    return binary


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise PeerUnavailable(f"{' '.join(command[:3])}... failed: {(done.stderr or done.stdout).strip()[-500:]}")


@dataclass(frozen=True)
class LlamaBenchResult:
    tokens_per_second: float  # the faster of the repack settings tried
    by_repack: dict[str, float]  # "0" / "1" -> tokens per second
    command: str


def cpu_has_amx() -> bool:
    try:
        return " amx_tile" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def run_llama_bench(
    gguf: Path, threads: int, n_gen: int = 128, n_prompt: int = 0, repetitions: int = 3, timeout: float = 300
) -> LlamaBenchResult:
    """`llama-bench -m M -t T -p P -n N -r R --repack 0[,1] -o json`: tokens/s of decode (n_prompt 0)
    or of prefill (n_gen 0). `--repack 0` (weights used as stored) always; on a CPU without AMX also
    `--repack 1` (llama.cpp's default, the CPU-specific layouts), and the faster one counts, so the
    comparison is with llama.cpp at its best on this machine."""
    binary = llama_bench_binary()
    repack = "0" if cpu_has_amx() else "0,1"
    command = [str(binary), "-m", str(gguf), "-t", str(threads), "-p", str(n_prompt), "-n", str(n_gen),
               "-r", str(repetitions), "--repack", repack, "-o", "json"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PeerUnavailable(f"llama-bench took more than {timeout:.0f} s (is the machine overloaded?)") from None
    if done.returncode != 0:
        raise PeerUnavailable(f"llama-bench failed: {done.stderr.strip()[-300:]}")
    rows = json.loads(done.stdout)
    by_repack = {
        ("1" if row.get("repack") else "0"): float(row["avg_ts"])
        for row in rows
        if int(row.get("n_gen", 0)) == n_gen and int(row.get("n_prompt", 0)) == n_prompt
    }
    if not by_repack:
        raise PeerUnavailable(f"llama-bench printed no row for -p {n_prompt} -n {n_gen}")
    return LlamaBenchResult(max(by_repack.values()), by_repack, " ".join(["llama-bench", *command[1:]]))


# ---- command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", action="store_true", help="build the peers that are missing")
    parser.add_argument("--rebuild", action="store_true", help="with --build: build again even if cached")
    parser.add_argument("--no-llama-cpp", action="store_true", help="leave llama.cpp alone (the long build)")
    parser.add_argument("--status", action="store_true", help="print what is built")
    args = parser.parse_args(argv)
    status = 0
    for name, find in (("llama2.c", llama2c_binary), ("llama.cpp", llama_bench_binary)):
        if name == "llama.cpp" and args.no_llama_cpp:
            continue
        try:
            path = find(build=args.build, rebuild=args.rebuild)
            print(f"{name}: {path}")
        except PeerUnavailable as e:
            print(f"{name}: {e}")
            status = 1 if args.build else status
    return status


if __name__ == "__main__":
    sys.exit(main())
