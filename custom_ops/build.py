"""Builds tfsr's custom ops without Bazel: ``python -m custom_ops.build`` (``make ops``).

Each op family ``F`` is ``cc/ops/F_ops.cc`` + ``cc/kernels/F*.cc`` (+ ``cc/kernels/F*_gpu.cu.cc``,
compiled with nvcc where it exists) and becomes ``tfsr/ops/_compiled/_F_ops.so``. CUDA code is
linked with the static CUDA runtime, so the same library also loads in a CPU-only TensorFlow and
runs its CPU kernels there.

A family is rebuilt only when its sources, the headers, the flags, the compilers or the
TensorFlow version change (a hash stamp in ``custom_ops/build/``); an up-to-date tree takes about
a second (TensorFlow is not imported: its flags are cached too). Compile units run in parallel.

Environment:
    TFSR_NO_CUDA=1       skip the CUDA kernels even where nvcc exists.
    TFSR_REQUIRE_CUDA=1  fail when nvcc (or the static CUDA runtime) is missing.
    TFSR_CXXFLAGS        extra g++ flags (e.g. ``-march=native``), appended last.
    TFSR_CUDA_ARCHS      comma-separated SM versions (default 75,80,86,89,90; PTX for the last).
    NVCC, CXX            the compilers (default: nvcc on PATH or /usr/local/cuda/bin/nvcc; g++).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

from tfsr.atomic_file import atomic_output
from tfsr.cpu_features import CPU_FEATURES_FILE, cpu_features

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CC_DIR = os.path.join(ROOT, "custom_ops", "cc")
BUILD_DIR = os.path.join(ROOT, "custom_ops", "build")
OUT_DIR = os.path.join(ROOT, "tfsr", "ops", "_compiled")
DEFAULT_CUDA_ARCHS = "75,80,86,89,90"


class BuildError(RuntimeError):
    """A compiler or configuration failure; the message is what the user needs to see."""


@dataclass
class Family:
    name: str
    cc: list[str]  # g++ units: cc/ops/NAME_ops.cc and cc/kernels/NAME*.cc
    cu: list[str]  # nvcc units: cc/kernels/NAME*.cu.cc
    headers: list[str] = field(default_factory=list)

    @property
    def library(self) -> str:
        return os.path.join(OUT_DIR, f"_{self.name}_ops.so")


def _rel(path: str) -> str:
    return os.path.relpath(path, ROOT)


def discover_families() -> list[Family]:
    """One family per ``cc/ops/*_ops.cc``.

    A family depends on its own headers (``<family>*.h``) and on shared headers (those named
    after no family), not on other families' headers.
    """
    headers = sorted(glob.glob(os.path.join(CC_DIR, "**", "*.h"), recursive=True))
    op_files = sorted(glob.glob(os.path.join(CC_DIR, "ops", "*_ops.cc")))
    names = [os.path.basename(f)[: -len("_ops.cc")] for f in op_files]

    def owners(header):
        return [n for n in names if os.path.basename(header).startswith(n)]

    families = []
    for op_file, name in zip(op_files, names, strict=True):
        own = [h for h in headers if name in owners(h) or not owners(h)]
        kernels = sorted(glob.glob(os.path.join(CC_DIR, "kernels", f"{name}*.cc")))
        cu = [k for k in kernels if k.endswith(".cu.cc")]
        cc = [op_file] + [k for k in kernels if not k.endswith(".cu.cc")]
        families.append(Family(name, cc, cu, own))
    return families


def _run(cmd: list[str], what: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise BuildError(
            f"{what} failed (exit {proc.returncode}):\n  {shlex.join(cmd)}\n"
            f"{proc.stdout}{proc.stderr}".rstrip()
        )
    return proc.stdout + proc.stderr


def tf_config() -> dict:
    """TensorFlow's compile and link flags, cached by the installed package (no TF import)."""
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.origin:
        raise BuildError("TensorFlow is not installed in this Python; run `make venv` first")
    init = spec.origin
    key = {
        "path": os.path.dirname(init),
        "version": importlib.metadata.version("tensorflow"),
        "mtime": os.path.getmtime(init),
    }
    cache = os.path.join(BUILD_DIR, "tf_config.json")
    if os.path.exists(cache):
        with open(cache) as f:
            cached = json.load(f)
        if cached.get("key") == key:
            return cached
    code = (
        "import json, tensorflow as tf; print(json.dumps({'compile': tf.sysconfig.get_compile_flags(),"
        " 'link': tf.sysconfig.get_link_flags()}))"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise BuildError(f"could not import TensorFlow to read its flags:\n{proc.stderr}")
    config = {"key": key, **json.loads(proc.stdout.strip().splitlines()[-1])}
    os.makedirs(BUILD_DIR, exist_ok=True)
    with open(cache, "w") as f:
        json.dump(config, f, indent=1)
    return config


@dataclass
class Cuda:
    nvcc: str
    include: str
    lib: str
    version: str


def find_cuda() -> Cuda | None:
    """nvcc and the static CUDA runtime, or None (TFSR_NO_CUDA, or not installed)."""
    required = os.environ.get("TFSR_REQUIRE_CUDA") == "1"
    if os.environ.get("TFSR_NO_CUDA") == "1":
        if required:
            raise BuildError("TFSR_NO_CUDA=1 and TFSR_REQUIRE_CUDA=1 contradict each other")
        return None
    nvcc = os.environ.get("NVCC") or shutil.which("nvcc")
    if not nvcc and os.path.exists("/usr/local/cuda/bin/nvcc"):
        nvcc = "/usr/local/cuda/bin/nvcc"
    if not nvcc:
        if required:
            raise BuildError("TFSR_REQUIRE_CUDA=1 but nvcc was not found (set NVCC or PATH)")
        return None
    # nvcc may be a wrapper script (/usr/local/bin/nvcc -> exec /usr/local/cuda-X/bin/nvcc).
    homes = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    homes += [os.path.dirname(os.path.dirname(os.path.realpath(nvcc))), "/usr/local/cuda"]
    home = include = lib = None
    for candidate in (h for h in homes if h):
        inc = os.path.join(candidate, "include")
        libs = [os.path.join(candidate, d) for d in ("lib64", "targets/x86_64-linux/lib")]
        found = [d for d in libs if os.path.exists(os.path.join(d, "libcudart_static.a"))]
        if found and os.path.exists(os.path.join(inc, "cuda_runtime.h")):
            home, include, lib = candidate, inc, found[0]
            break
    if home is None:
        searched = ", ".join(h for h in homes if h)
        message = (
            f"nvcc found at {nvcc} but no cuda_runtime.h + libcudart_static.a under {searched}"
            " (set CUDA_HOME)"
        )
        if required:
            raise BuildError(message)
        print(f"note: {message}; building CPU kernels only")
        return None
    version = _run([nvcc, "--version"], "nvcc --version").strip().splitlines()[-1]
    return Cuda(nvcc, include, lib, version)


# Instruction sets the kernels are compiled for where the build machine has them (TensorFlow's
# wheels already require AVX). The libraries then need them too: the loader reads the list from
# CPU_FEATURES_FILE and falls back to the pure-TF twins on a CPU without them.
_OPTIONAL_CPU_FEATURES = {"avx2": "-mavx2", "fma": "-mfma"}


def _required_features() -> list[str]:
    have = cpu_features()
    wanted = sorted(_OPTIONAL_CPU_FEATURES)
    return wanted if set(wanted) <= have else []


def _cpu_flags() -> list[str]:
    return [_OPTIONAL_CPU_FEATURES[f] for f in _required_features()]


def cxx_flags(tf: dict, cuda: Cuda | None) -> list[str]:
    flags = ["-std=c++17", "-O3", "-fPIC", "-fopenmp-simd", "-Wall", "-Wno-interference-size"]
    flags += [
        "-Wno-sign-compare",
        "-Wno-unknown-pragmas",
        "-Wno-deprecated-declarations",
        f"-I{ROOT}",
        *tf["compile"],
    ]
    flags += _cpu_flags()
    if cuda:
        flags += ["-DGOOGLE_CUDA=1", f"-I{cuda.include}"]
    return flags + shlex.split(os.environ.get("TFSR_CXXFLAGS", ""))


def nvcc_flags() -> list[str]:
    archs = [a.strip() for a in os.environ.get("TFSR_CUDA_ARCHS", DEFAULT_CUDA_ARCHS).split(",")]
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs if a]
    gencode.append(f"-gencode=arch=compute_{archs[-1]},code=compute_{archs[-1]}")
    return [
        "-std=c++17",
        "-O3",
        "-x",
        "cu",
        "-Xcompiler",
        "-fPIC",
        "--expt-relaxed-constexpr",
        "-DGOOGLE_CUDA=1",
        f"-I{ROOT}",
        "--threads",
        "0",
        *gencode,
    ]


def link_flags(tf: dict, cuda: Cuda | None) -> list[str]:
    flags = []
    if cuda:
        # Static cudart, before TensorFlow's libraries (which export a cudart stub that would
        # otherwise satisfy the CUDA symbols), hidden from the dynamic symbol table: the library
        # then loads in CPU-only TensorFlow too and never mixes CUDA runtimes.
        flags += [f"-L{cuda.lib}", "-l:libcudart_static.a", "-ldl", "-lrt", "-lpthread"]
        flags += ["-Wl,--exclude-libs,ALL"]
    return flags + list(tf["link"])


def _stamp(family: Family, parts: list) -> str:
    h = hashlib.sha256()
    for path in [*family.cc, *family.cu, *family.headers]:
        h.update(_rel(path).encode())
        with open(path, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    h.update(json.dumps(parts, sort_keys=True).encode())
    return h.hexdigest()


def build(
    force: bool = False,
    jobs: int | None = None,
    only: list[str] | None = None,
    check: bool = False,
) -> list[str]:
    """Builds every family whose stamp changed; returns their names.

    With ``check``, builds nothing and returns the names of the out-of-date families.
    Raises BuildError on any failure, with the compiler's message.
    """
    families = [f for f in discover_families() if not only or f.name in only]
    if only and len(families) != len(set(only)):
        known = [f.name for f in discover_families()]
        raise BuildError(f"unknown op family in {only}; known: {known}")
    tf = tf_config()
    cuda = find_cuda()
    cxx = os.environ.get("CXX", "g++")
    cflags, nflags, lflags = cxx_flags(tf, cuda), nvcc_flags(), link_flags(tf, cuda)
    cxx_version = _run([cxx, "--version"], f"{cxx} --version").splitlines()[0]
    config = [tf["key"]["version"], cxx, cxx_version, cflags, lflags]
    if cuda:
        config += [cuda.nvcc, cuda.version, nflags]

    todo = []
    for family in families:
        has_cuda = bool(cuda and family.cu)
        stamp = _stamp(family, config + [has_cuda])
        stamp_file = os.path.join(BUILD_DIR, family.name, "stamp")
        if not force and os.path.exists(family.library) and os.path.exists(stamp_file):
            with open(stamp_file) as f:
                if f.read().strip() == stamp:
                    print(f"{family.name}: up to date ({_rel(family.library)})")
                    continue
        todo.append((family, stamp, stamp_file, has_cuda))
    if check or not todo:
        for family, *_ in todo:
            print(f"{family.name}: out of date ({_rel(family.library)})")
        return [family.name for family, *_ in todo]

    units = []  # (family, source, object, command)
    for family, _, _, has_cuda in todo:
        obj_dir = os.path.join(BUILD_DIR, family.name)
        os.makedirs(obj_dir, exist_ok=True)
        for src in family.cc:
            obj = os.path.join(obj_dir, os.path.basename(src) + ".o")
            units.append((family, src, obj, [cxx, *cflags, "-c", src, "-o", obj], cxx))
        if has_cuda:
            for src in family.cu:
                obj = os.path.join(obj_dir, os.path.basename(src) + ".o")
                units.append((family, src, obj, [cuda.nvcc, *nflags, "-c", src, "-o", obj], "nvcc"))
        if family.cu and not has_cuda:
            print(f"{family.name}: no CUDA (nvcc not found or TFSR_NO_CUDA=1): CPU kernels only")

    def compile_unit(unit):
        family, src, obj, cmd, tool = unit
        # An object is reused when its source, the headers and its command are unchanged.
        h = hashlib.sha256(json.dumps([config, cmd]).encode())
        for path in [src, *family.headers]:
            with open(path, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
        obj_stamp = obj + ".stamp"
        if os.path.exists(obj) and os.path.exists(obj_stamp):
            with open(obj_stamp) as f:
                if f.read().strip() == h.hexdigest():
                    return
        print(f"{family.name}: {os.path.basename(tool)} {_rel(src)}", flush=True)
        out = _run(cmd, f"compiling {_rel(src)}")
        if out.strip():
            print(out.rstrip(), flush=True)
        with open(obj_stamp, "w") as f:
            f.write(h.hexdigest() + "\n")

    workers = jobs or os.cpu_count() or 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(compile_unit, u) for u in units]
        errors = []
        for fut in futures:
            try:
                fut.result()
            except BuildError as e:
                errors.append(str(e))
    if errors:
        raise BuildError("\n\n".join(errors))

    os.makedirs(OUT_DIR, exist_ok=True)
    for family, stamp, stamp_file, _ in todo:
        objs = [u[2] for u in units if u[0] is family]
        print(f"{family.name}: linking {_rel(family.library)}", flush=True)
        with atomic_output(family.library) as tmp:
            _run([cxx, "-shared", *objs, "-o", tmp, *lflags], f"linking {_rel(family.library)}")
        with open(stamp_file, "w") as f:
            f.write(stamp + "\n")
        _record_cpu_features(family.name, _required_features())
    return [family.name for family, *_ in todo]


def _record_cpu_features(family: str, required: list[str]) -> None:
    """Records in CPU_FEATURES_FILE what ``family``'s library, just linked, needs of a CPU.

    One entry per library: a build of some families (``python -m custom_ops.build NAME``, or a
    failed one) leaves the others' entries as they were built. A file of the older form (one
    list for all) is kept as the entry of every other library.
    """
    path = os.path.join(OUT_DIR, CPU_FEATURES_FILE)
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        saved = {}
    libraries = dict(saved.get("libraries", {}))
    if "required" in saved:
        for other in discover_families():
            libraries.setdefault(other.name, saved["required"])
    libraries[family] = required
    with atomic_output(path) as tmp, open(tmp, "w") as f:
        json.dump({"libraries": libraries}, f, indent=1, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m custom_ops.build", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="parallel compile units")
    parser.add_argument(
        "--check", action="store_true", help="build nothing; exit 1 if a library is out of date"
    )
    parser.add_argument("families", nargs="*", help="op families to build (default: all)")
    args = parser.parse_args(argv)
    try:
        stale = build(
            force=args.force, jobs=args.jobs, only=args.families or None, check=args.check
        )
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
