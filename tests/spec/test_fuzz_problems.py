"""Fuzzing the problem-file reader with hostile and broken inputs.

Thousands of generated documents (random YAML, mutations of the shipped problems, deep
nesting, anchors and aliases, binary junk, code injection, huge exponents, long
expressions, Unicode lookalikes) are written to a file and checked with the real command,
``nsvd check FILE``, in-process.  Every one must either validate (exit 0) or be refused
(exit 2) with one ``FILE:LINE: key: message`` or ``FILE: message`` line per error, within a
second, without a traceback, without running any of its text (a sentinel file must never
appear) and without hanging.  A document that validates also goes through
``runner.prepare`` (which samples the potential); it may refuse it only with a located
:class:`ProblemError`, within the same second.

Reproducible (derandomized) and sized for CI: ``NSVD_FUZZ_EXAMPLES`` scales the number of
examples (default 1: about 2,000 documents, under a minute on two cores; 5 gives about
10,000).  ``NSVD_FUZZ_REPORT=FILE`` writes the counts per strategy as JSON.
"""

from __future__ import annotations

import copy
import faulthandler
import json
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from nsvd_cli.cli import app
from nsvd_cli.cli import common as cli_base
from nsvd_cli.expr import BASE_FUNCTIONS, REFERENCE_FUNCTIONS
from nsvd_cli.runs import prepare
from nsvd_cli.spec.load import ProblemError, load_problem

ROOT = Path(__file__).resolve().parents[2]
PROBLEM_FILES = sorted((ROOT / "problems").glob("*.yaml"))
PROBLEM_TEXTS = [p.read_text() for p in PROBLEM_FILES]
PROBLEM_DATA = [yaml.safe_load(t) for t in PROBLEM_TEXTS]

SCALE = float(os.environ.get("NSVD_FUZZ_EXAMPLES", "1"))
TIME_LIMIT = 1.0  # seconds per command (and per prepare)
HANG_LIMIT = 20.0  # a Python-level hang fails the example after this
CRASH_LIMIT = 120.0  # a hang in C code (no signal handler runs) kills the process

# Written into injected text; replaced by an absolute path in the test's tmp_path.
SENTINEL_TOKEN = "SENTINEL_PATH"
SENTINEL_NAME = "SENTINEL"


def examples(n: int) -> int:
    return max(1, round(n * SCALE))


FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    # The failing document is in the assertion message; shrinking it can take minutes.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)


# -- bookkeeping --------------------------------------------------------------------------


@dataclass
class Tally:
    tried: int = 0
    valid: int = 0
    refused: int = 0
    prepared: int = 0
    prepare_refused: int = 0
    slowest: float = 0.0
    slowest_prepare: float = 0.0
    seconds: float = 0.0
    slowest_doc: str = ""


@dataclass
class Report:
    strategies: dict[str, Tally] = field(default_factory=dict)

    def tally(self, name: str) -> Tally:
        return self.strategies.setdefault(name, Tally())


REPORT = Report()


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    start = time.perf_counter()
    yield
    rows = {name: vars(t) for name, t in REPORT.strategies.items()}
    total = {
        "tried": sum(t.tried for t in REPORT.strategies.values()),
        "valid": sum(t.valid for t in REPORT.strategies.values()),
        "refused": sum(t.refused for t in REPORT.strategies.values()),
        "wall_seconds": time.perf_counter() - start,
    }
    target = os.environ.get("NSVD_FUZZ_REPORT")
    if target:
        Path(target).write_text(json.dumps({"strategies": rows, "total": total}, indent=2))
    for name, t in REPORT.strategies.items():
        print(
            f"\n{name}: {t.tried} tried, {t.valid} valid ({t.prepare_refused} refused by "
            f"prepare), {t.refused} refused; slowest check {t.slowest:.3f} s, "
            f"slowest prepare {t.slowest_prepare:.3f} s"
        )
    print(f"total: {total}")


# -- running one document -----------------------------------------------------------------


class Hang(BaseException):
    """Raised by the alarm; a BaseException so that CliRunner does not swallow it."""


@contextmanager
def hang_guard(seconds: float) -> Iterator[None]:
    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no answer after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(CRASH_LIMIT, exit=True)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, previous)


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``action`` under the hang guard; once more if it was slow (a busy machine). The
    time is the smaller of wall-clock and this process's CPU seconds: other processes on
    the cores (pytest-xdist's other worker, a benchmark) stretch the one, torch's threads
    the other, and neither is what the test is about."""
    best, result = math.inf, None
    for _ in range(2):
        with hang_guard(HANG_LIMIT):
            start, cpu = time.perf_counter(), time.process_time()
            result = action()
            elapsed = min(time.perf_counter() - start, time.process_time() - cpu)
        best = min(best, elapsed)
        if best <= TIME_LIMIT:
            break
    return best, result


@pytest.fixture
def one_thread() -> Iterator[None]:
    # Deriving settings runs many small torch ops on 50,000 points; with torch's default
    # threads on a busy two-core machine they take 20-30 s instead of 0.2 s.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None) -> Path:
    # Relative paths in injected text ("touch SENTINEL") land here too.
    monkeypatch.chdir(tmp_path)
    # Known bugs outside the reader (see test_cli_prints_error_lines_verbatim): the CLI's
    # Rich consoles turn ":100:" into an emoji, and `out` wraps at the terminal width (80
    # columns when captured); fuzz the reader through consoles that print verbatim.
    for console in (cli_base.err, cli_base.out):
        monkeypatch.setattr(console, "soft_wrap", True)
        monkeypatch.setattr(console, "_emoji", False)  # what Console(emoji=False) sets
    return tmp_path


RUNNER = CliRunner()


def _fill(document: str | bytes, sentinel: Path) -> bytes:
    if isinstance(document, str):
        document = document.encode("utf-8", errors="surrogatepass")
    return document.replace(SENTINEL_TOKEN.encode(), str(sentinel).encode())


def check_document(strategy: str, document: str | bytes, workdir: Path) -> None:
    sentinel = workdir / SENTINEL_NAME
    path = workdir / "problem.yaml"
    data = _fill(document, sentinel)
    path.write_bytes(data)
    tally = REPORT.tally(strategy)
    tally.tried += 1
    shown = data[:400]

    elapsed, result = timed(lambda: RUNNER.invoke(app, ["check", str(path)]))
    tally.seconds += elapsed
    if elapsed > tally.slowest:
        tally.slowest, tally.slowest_doc = elapsed, repr(shown)
    assert elapsed <= TIME_LIMIT, f"nsvd check took {elapsed:.2f} s on {shown!r}"
    assert not sentinel.exists(), f"code ran: {shown!r}"
    assert sorted(p.name for p in workdir.iterdir()) == ["problem.yaml"], shown
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception} on {shown!r}"
    )
    assert result.exit_code in (0, 2), f"exit {result.exit_code}: {result.output} on {shown!r}"
    if result.exit_code == 2:
        tally.refused += 1
        assert_error_lines(result.stderr, str(path), shown)
        return

    tally.valid += 1
    assert result.stdout.startswith(f"{path}: ok ("), result.output
    seconds, outcome = timed(lambda: _prepare(path))
    tally.slowest_prepare = max(tally.slowest_prepare, seconds)
    assert seconds <= TIME_LIMIT, f"prepare took {seconds:.2f} s on {shown!r}"
    assert not sentinel.exists(), f"code ran: {shown!r}"
    if isinstance(outcome, ProblemError):
        tally.prepare_refused += 1
        assert_error_lines(str(outcome), str(path), shown)
    else:
        tally.prepared += 1


def _prepare(path: Path) -> ProblemError | None:
    try:
        settings = prepare(load_problem(path))
    except ProblemError as error:
        return error
    assert settings.optimiser.steps > 0
    assert math.isfinite(settings.transform.scale) and settings.transform.scale > 0
    return None


def assert_error_lines(text: str, path: str, shown: bytes) -> None:
    lines = [line for line in text.split("\n") if line.strip()]
    assert lines, f"exit 2 without a reason on {shown!r}"
    for line in lines:
        assert line.startswith(path), f"line without the file: {line!r} on {shown!r}"
        rest = line[len(path) :]
        assert rest.startswith(":"), f"line without the file: {line!r} on {shown!r}"
        assert len(line.splitlines()) == 1, f"line breaks in {line!r} on {shown!r}"
        assert "Traceback" not in line and 'File "' not in line, line


# -- what documents are made of ---------------------------------------------------------

TOP_KEYS = [
    "name",
    "description",
    "coordinates",
    "parameters",
    "operator",
    "domain",
    "modes",
    "want",
    "solver",
    "network",
    "reference",
]
INNER_KEYS = [
    "kinetic",
    "diffusion",
    "weight",
    "langevin",
    "temperature",
    "boundary",
    "robin",
    "potential",
    "drift",
    "kernel",
    "input_coordinates",
    "input_domain",
    "box",
    "region",
    "bounds",
    "gaussian",
    "scale",
    "method",
    "steps",
    "batch_size",
    "learning_rate",
    "seed",
    "shift",
    "sampling_scales",
    "hidden",
    "depth",
    "dtype",
    "eval_samples",
    "checkpoint_every",
    "derivatives",
    "hutchinson_probes",
    "compile",
    "spin_decay",
    "refine_steps",
    "kind",
    "activation",
    "radial_feature",
    "fourier_features",
    "fourier_scale",
    "envelope",
    "cusp",
    "eigenvalues",
    "eigenvalue",
    "quantum_numbers",
    "where",
    "eigenfunction",
    "singular_values",
    "singular_value",
    "left_function",
    "right_function",
    "x",
    "y",
    "n",
    "Z",
]

INJECTIONS = [
    f"__import__('os').system('touch {SENTINEL_TOKEN}')",
    f"__import__('os').system('touch {SENTINEL_NAME}')",
    f"eval(\"__import__('os').system('touch {SENTINEL_TOKEN}')\")",
    f"exec(\"open('{SENTINEL_TOKEN}', 'w').close()\")",
    f"open('{SENTINEL_TOKEN}', 'w')",
    f"(lambda: open('{SENTINEL_TOKEN}', 'w'))()",
    "lambda: 0",
    "lambda x: x",
    "x.__class__",
    "x.__class__.__mro__[-1].__subclasses__()",
    "().__class__.__base__.__subclasses__()",
    "[c for c in ().__class__.__base__.__subclasses__()]",
    "getattr(x, '__class__')",
    "globals()",
    "__builtins__",
    "__import__",
    "eval",
    "exec",
    "compile('1', '', 'eval')",
    "Function('f')(x)",
    "Symbol('x')",
    "sympify('x')",
    f"sympify(\"__import__('os').system('touch {SENTINEL_TOKEN}')\")",
    f"parse_expr(\"open('{SENTINEL_TOKEN}', 'w')\")",
    "S('x')",
    "Lambda(x, x)(1)",
    "Integral(x, x)",
    "N(pi, 10**7)",
    "pi.evalf(10**7)",
    "factorint(2**256 + 1)",
    "x if x else 1",
    "x[0]",
    "{1: 2}",
    "f'{x}'",
    "b'x'",
    "'x' * 10**9",
    "(x := 1)",
    f"(x := open('{SENTINEL_TOKEN}', 'w'))",
    "*x",
    "x @ x",
    "x << 1",
    "x ^ x",
    "~x",
    "not x",
    "x and x",
    "1j",
    "...",
    "None",
    "True",
    "__debug__",
    "x; import os",
    "x\nimport os",
    "#",
    "",
    "  ",
]

HUGE = [
    "x**(10**10)",
    "exp(exp(exp(1000)))",
    "x**99999999",
    "9**9**9**9",
    "2**100000",
    "10**400",
    "1e308*1e308",
    "1e400",
    "(1e12)**64",
    "x**64**64",
    "(x**64)**64",
    "x**(2**31)",
    "x**-99999999",
    "factorial(170)**64",
    "factorial(171)",
    "hermite(170, x)**64",
    "hermite(10**12, x)",
    "binomial(10**12, 10**6)",
    "exp(1000)",
    "exp(-1000)*x",
    "sinh(1e12)",
    "log(0)",
    "log(x - x)",
    "1/(x - x)",
    "sqrt(x - x - 1)",
    "atan2(x - x, x - x)",
    "x % (x - x)",
    "x % 0",
    "0**-1",
    "E**E**E",
    "pi**pi**pi",
    "Max(" + ", ".join(f"sin(x + {i})" for i in range(64)) + ")",
    "Min(" + ", ".join(f"x**{i % 9}" for i in range(64)) + ")",
    "*".join(f"hermite({170 - i}, x)" for i in range(100)),
    "+".join(f"tan(pi/{i + 3})" for i in range(150)),
    "(" * 59 + "x" + ")" * 59,
    "(" * 61 + "x" + ")" * 61,
    "sqrt(" * 58 + "x" + ")" * 58,
    "-" * 1999 + "x",
    "x" + "+x" * 999,
    "x" + "*x" * 1100,
    "x" * 2001,
    "1" * 2000,
]

EXPRESSION_KEYS: list[tuple[str | int, ...]] = [
    ("operator", "potential"),
    ("operator", "kinetic"),
    ("operator", "weight"),
    ("domain", "region"),
    ("reference", "eigenvalue"),
    ("reference", "where"),
    ("reference", "eigenfunction"),
    ("parameters", "Z"),
    ("operator", "drift", 0),
    ("operator", "kernel"),
]

HOSTILE_NUMBERS: list[Any] = [
    1e308,
    -1e308,
    10**400,
    -(10**400),
    -0.0,
    math.nan,
    math.inf,
    -math.inf,
    0,
    -1,
    2**63,
    -(2**63) - 1,
    5e-324,
    1e-320,
    0.5,
    513,
    65,
    10**12,
]
HOSTILE_TEXTS: list[Any] = [
    "",
    " ",
    "\t",
    "\n",
    "~",
    "null",
    "yes",
    "1e400",
    "-1e400",
    ".nan",
    "-.inf",
    "NaN",
    "0x1F",
    "1_000",
    "0o17",
    "1:30",
    "2001-01-01",
    "x" * 5000,
    "1" * 5000,
    "\u200bx",
    "x\u202e",
    "\u0445",
    "\uff58",
    "\U0001d465",
    "\ufeff",
    "a\nb",
    "a\u2028b",
    "{}",
    "[]",
    "*a",
    "&a",
    "!!python/object/apply:os.system",
    "%s%s%n{0}{message}",
    "[red]x[/red]",
    ":thumbs_up:",
    "\x1b[31mred",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(HOSTILE_NUMBERS),
    st.sampled_from(HOSTILE_TEXTS),
    st.sampled_from(INJECTIONS),
    st.sampled_from(HUGE),
)
keys = st.one_of(
    st.sampled_from(TOP_KEYS + INNER_KEYS),
    st.text(max_size=12),
    st.integers(-3, 3),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False),
)
trees = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(keys, inner, max_size=6),
    ),
    max_leaves=40,
)


def dump(data: Any, flow: bool | None = None, unicode: bool = True) -> str:
    return yaml.dump(
        data,
        Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
        allow_unicode=unicode,
        default_flow_style=flow,
        sort_keys=False,
        width=100_000,
    )


# -- strategies ---------------------------------------------------------------------------


@st.composite
def random_yaml(draw: st.DrawFn) -> str:
    shape = draw(st.sampled_from(["tree", "problem-like", "problem-like", "scalar"]))
    if shape == "tree":
        data = draw(trees)
    elif shape == "scalar":
        data = draw(scalars)
    else:
        data = draw(st.dictionaries(st.sampled_from(TOP_KEYS) | keys, trees, max_size=12))
        if draw(st.booleans()):  # often enough to get past "missing required key"
            data = {"name": "p", "coordinates": ["x"], "modes": 2, **data}
    return dump(data, draw(st.sampled_from([None, True, False])), draw(st.booleans()))


def _slots(data: Any) -> Iterator[tuple[Any, Any]]:
    """(container, key) for every value in the tree, the root's entries included."""
    items: list[tuple[Any, Any]] = []
    if isinstance(data, dict):
        items = list(data.items())
    elif isinstance(data, list):
        items = list(enumerate(data))
    for key, value in items:
        yield data, key
        yield from _slots(value)


replacements = st.one_of(
    scalars,
    st.sampled_from([{}, [], [[]], {"": None}, [None], ["x", "x"], {"x": [0, 1]}]),
    trees,
    st.builds(
        lambda item, size: [item] * size,
        st.sampled_from([0, 1.5, "x", None, [0, 1]]),
        st.sampled_from([2, 65, 513, 5000, 12_000]),
    ),
)


@st.composite
def mutated_problem(draw: st.DrawFn) -> str:
    data = copy.deepcopy(draw(st.sampled_from(PROBLEM_DATA)))
    for _ in range(draw(st.integers(1, 3))):
        slots = list(_slots(data))
        operation = draw(
            st.sampled_from(
                ["number", "number", "expression", "expression"]
                + ["drop", "replace", "wrap", "add", "rename"]
            )
        )
        # Numbers and expressions keep their type: those files get through to prepare.
        if operation == "number":
            slots = [(c, k) for c, k in slots if type(c[k]) in (int, float)]
        elif operation == "expression":
            slots = [(c, k) for c, k in slots if isinstance(c[k], str)]
        if not slots:
            continue
        container, key = draw(st.sampled_from(slots))
        if operation == "number":
            container[key] = draw(st.sampled_from(HOSTILE_NUMBERS) | st.integers() | st.floats())
        elif operation == "expression":
            container[key] = draw(expressions | st.sampled_from(HUGE + INJECTIONS))
        elif operation == "drop":
            del container[key]
        elif operation == "replace":
            # A copy: sampled_from hands out the same list/dict objects every time, and a
            # later mutation inside one would change what earlier examples drew (flaky data).
            container[key] = copy.deepcopy(draw(replacements))
        elif operation == "wrap":
            container[key] = draw(st.sampled_from([[container[key]], {"x": container[key]}]))
        elif operation == "add" and isinstance(container, dict):
            container[draw(keys)] = copy.deepcopy(draw(replacements))
        elif operation == "rename" and isinstance(container, dict):
            value = container.pop(key)
            container[draw(keys)] = value
    return dump(data, draw(st.sampled_from([None, True, False])), draw(st.booleans()))


MINIMAL = "name: p\ncoordinates: [x, y]\nmodes: 2\n"


@st.composite
def deep_nesting(draw: st.DrawFn) -> str:
    depth = draw(
        st.sampled_from([2, 10, 49, 50, 51, 60, 61, 100, 1000, 10_000, 100_000])
        | st.integers(1, 120)
    )
    kind = draw(
        st.sampled_from(["flow-list", "flow-map", "block-map", "block-list", "mixed", "expression"])
    )
    if kind == "flow-list":
        value = "[" * depth + "1" + "]" * depth
    elif kind == "flow-map":
        value = "{a: " * depth + "1" + "}" * depth
    elif kind == "mixed":
        value = "[{a: " * depth + "1" + "}]" * depth
    elif kind == "block-map":
        depth = min(depth, 2000)
        value = "\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(depth))
        value += "  " * (depth + 1) + "1"
    elif kind == "block-list":
        depth = min(depth, 2000)
        value = "\n" + "".join("  " * (i + 1) + "-\n" for i in range(depth))
        value += "  " * (depth + 1) + "1"
    else:
        wrap = draw(st.sampled_from(["(", "sqrt(", "sin(", "-(", "Abs(", "Piecewise(("]))
        close = {"Piecewise((": ", x > 0))"}.get(wrap, ")")
        depth = min(depth, 3000)
        value = '"' + wrap * depth + "x" + close * depth + '"'
        if draw(st.booleans()):
            return MINIMAL + f"operator:\n  potential: {value}\n"
        return MINIMAL + f"domain:\n  region: {value}\n  bounds: {{x: [0, 1], y: [0, 1]}}\n"
    key = draw(
        st.sampled_from(["extra", "description", "parameters", "operator", "solver", "coordinates"])
    )
    return MINIMAL + f"{key}: {value}\n"


@st.composite
def anchors_and_aliases(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["laughs", "anchor", "merge", "recursive", "alias-key"]))
    if kind == "laughs":
        width = draw(st.integers(2, 12))
        levels = draw(st.integers(1, 12))
        lines = ['a0: &a0 ["lol", "lol"]']
        for i in range(1, levels):
            lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
        body = "\n".join(lines) + "\n"
        return draw(st.sampled_from([body, MINIMAL + body, MINIMAL + "extra:\n  " + body]))
    if kind == "anchor":
        base = draw(st.sampled_from(PROBLEM_TEXTS)).splitlines()
        index = draw(st.integers(0, len(base) - 1))
        line = base[index]
        if ":" in line:
            head, tail = line.split(":", 1)
            base[index] = f"{head}: &anchor{tail}"
        return "\n".join(base) + "\n" + draw(st.sampled_from(["", "extra: *anchor\n"]))
    if kind == "merge":
        return "base: &b {name: p, coordinates: [x], modes: 2}\n<<: *b\n"
    if kind == "recursive":
        return draw(st.sampled_from(["a: &a [*a]\n", "&a {b: *a}\n", MINIMAL + "x: &x {y: *x}\n"]))
    return MINIMAL + "k: &k name\n*k : q\n"


INVALID_UTF8 = [
    b"\xff",
    b"\xfe\xff",
    b"\xc3\x28",
    b"\xa0\xa1",
    b"\xe2\x28\xa1",
    b"\xf0\x28\x8c\x28",
    b"\xed\xa0\x80",
    b"\xc0\xaf",
    b"\xf8\x88\x80\x80\x80",
    b"\x00",
    b"\x1b[2J",
    b"\r",
    b"\x85",
]


@st.composite
def binary_junk(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["random", "insert", "truncate", "encoding", "control"]))
    base = draw(st.sampled_from(PROBLEM_TEXTS)).encode()
    if kind == "random":
        return draw(st.binary(max_size=3000))
    if kind == "insert":
        data = bytearray(base)
        for _ in range(draw(st.integers(1, 5))):
            at = draw(st.integers(0, len(data)))
            junk = draw(st.sampled_from(INVALID_UTF8) | st.binary(min_size=1, max_size=8))
            data[at:at] = junk
        return bytes(data)
    if kind == "truncate":
        return base[: draw(st.integers(0, len(base)))]
    if kind == "encoding":
        encoding = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252"]))
        text = base.decode() + draw(st.sampled_from(["", "description: caf\u00e9\n"]))
        return text.encode(encoding, errors="replace")
    byte = draw(st.integers(0, 31) | st.sampled_from([127, 0x85]))
    at = draw(st.integers(0, len(base)))
    return base[:at] + bytes([byte]) + base[at:]


def _set_path(data: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    """Put ``value`` at ``path``, making the mappings and lists on the way."""
    node: Any = data
    for part, after in zip(path[:-1], path[1:]):
        if isinstance(node, dict) and not isinstance(node.get(part), (dict, list)):
            node[part] = [] if isinstance(after, int) else {}
        node = node[part]
    last = path[-1]
    if isinstance(node, list):
        assert isinstance(last, int)
        node[last : last + 1] = [value]
    else:
        node[last] = value


FULL: dict[str, Any] = {
    "name": "full",
    "coordinates": ["x", "y"],
    "parameters": {"Z": 1},
    "operator": {"kinetic": "1/2", "potential": "x**2 + y**2", "drift": ["y", "-x"]},
    "modes": 3,
    "want": "smallest-singular",
    "reference": {
        "singular_value": "n + m + 1",
        "quantum_numbers": {"n": [0, 3], "m": [0, 3]},
        "where": "n >= m",
    },
}
BOX: dict[str, Any] = {
    "name": "box",
    "coordinates": ["x", "y"],
    "parameters": {"Z": 2},
    "operator": {"potential": "Z*x*y"},
    "domain": {"region": "1 - x**2 - y**2", "bounds": {"x": [-1, 1], "y": [-1, 1]}},
    "modes": 2,
    "reference": {
        "eigenvalue": "n + m",
        "quantum_numbers": {"n": [0, 3], "m": [0, 3]},
        "eigenfunction": "hermite(n, x)*hermite(m, y)",
    },
}
KERNEL: dict[str, Any] = {
    "name": "kernel",
    "coordinates": ["x"],
    "parameters": {"Z": 1},
    "operator": {"kernel": "exp(-Z*(x - y)**2)", "input_coordinates": ["y"]},
    "domain": {"box": {"x": [0, 1]}},
    "modes": 2,
    "reference": {"singular_values": [1.0, 0.5]},
}


def _with_expression(draw: st.DrawFn, text: str) -> dict[str, Any]:
    base = copy.deepcopy(draw(st.sampled_from([FULL, BOX, KERNEL])))
    _set_path(base, draw(st.sampled_from(EXPRESSION_KEYS)), text)
    return base


PYTHON_TAGS = [
    f'!!python/object/apply:os.system ["touch {SENTINEL_TOKEN}"]',
    f'!!python/object/apply:subprocess.check_output [["touch", "{SENTINEL_TOKEN}"]]',
    f'!!python/object/new:os.system ["touch {SENTINEL_TOKEN}"]',
    "!!python/name:os.system",
    "!!python/module:os",
    "!!python/object:__main__.Thing {a: 1}",
    f'!<tag:yaml.org,2002:python/object/apply:os.system> ["touch {SENTINEL_TOKEN}"]',
    "!!binary aGVsbG8=",
    "!!set {x, y}",
    "!!omap [{a: 1}]",
    "!!pairs [{a: 1}]",
    "!!timestamp 2001-12-14",
    "!!float nan",
    "!!int 1" + "0" * 4500,
    "!!str 1",
    "!ruby/object:Gem::Installer {}",
    "!custom x",
]


@st.composite
def code_injection(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["expression", "expression", "tag", "directive", "key"]))
    if kind == "expression":
        text = draw(st.sampled_from(INJECTIONS))
        return dump(_with_expression(draw, text), draw(st.sampled_from([None, True, False])))
    if kind == "tag":
        tag = draw(st.sampled_from(PYTHON_TAGS))
        where = draw(
            st.sampled_from(
                [
                    "name: {}\ncoordinates: [x]\nmodes: 2\n",
                    "name: p\ncoordinates: [x]\nmodes: 2\noperator: {{potential: {}}}\n",
                    "name: p\ncoordinates: {}\nmodes: 2\n",
                    "name: p\ncoordinates: [x]\nmodes: 2\nparameters: {{a: {}}}\n",
                    "{}\n",
                    "name: p\ncoordinates: [x]\nmodes: {}\n",
                ]
            )
        )
        return where.format(tag)
    if kind == "directive":
        return draw(
            st.sampled_from(
                [
                    "%TAG !p! tag:yaml.org,2002:python/object/apply:\n---\n"
                    f'name: !p!os.system ["touch {SENTINEL_TOKEN}"]\n',
                    "%YAML 1.2\n---\n" + MINIMAL,
                    "%YAML 9.9\n---\n" + MINIMAL,
                    "--- !!python/object/apply:os.system\n- touch SENTINEL\n",
                    MINIMAL + "---\n" + MINIMAL,
                    "...\n" + MINIMAL,
                ]
            )
        )
    injected = draw(st.sampled_from(INJECTIONS + HOSTILE_TEXTS))
    data = copy.deepcopy(draw(st.sampled_from([FULL, BOX])))
    target = draw(st.sampled_from(["top", "operator", "parameters", "coordinates", "name"]))
    if target == "top":
        data[injected] = 1
    elif target in ("operator", "parameters"):
        data[target][injected] = "x"
    elif target == "coordinates":
        data["coordinates"] = [injected, "y"]
    else:
        data["name"] = injected
    return dump(data, draw(st.sampled_from([None, True])))


OPERATORS = ["+", "-", "*", "/", "**", "%", "//", "<", "==", "&", "|", " and ", ",", ""]
ATOMS = [
    "x",
    "y",
    "n",
    "m",
    "Z",
    "pi",
    "E",
    "0",
    "1",
    "2",
    "0.5",
    "1e308",
    "1e-320",
    "99999999",
    "10**400",
    "1e12",
    "-0",
    "nan",
    "inf",
    "oo",
    "zoo",
    "I",
    "True",
    "q",
    "os",
    "\u0445",
]
CALLABLE = [*BASE_FUNCTIONS, *REFERENCE_FUNCTIONS, "Function", "eval", "getattr", "foo"]

expressions = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(OPERATORS), inner).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
        st.tuples(st.sampled_from(CALLABLE), st.lists(inner, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"
        ),
        st.tuples(inner, inner).map(lambda t: f"Piecewise(({t[0]}, {t[1]} > 0), (0, True))"),
        st.tuples(inner, st.sampled_from([2, 64, 65, 10**10, -1, 0.5])).map(
            lambda t: f"{t[0]}**{t[1]}"
        ),
        inner.map(lambda e: f"-{e}"),
    ),
    max_leaves=30,
)


@st.composite
def huge_expressions(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["huge", "grammar", "grammar", "long", "long-repeat"]))
    if kind == "huge":
        text = draw(st.sampled_from(HUGE))
    elif kind == "grammar":
        text = draw(expressions)
    elif kind == "long":
        parts = draw(st.lists(expressions, min_size=2, max_size=40))
        text = draw(st.sampled_from(["+", "*", " - "])).join(parts)
    else:
        term = draw(st.sampled_from(["x", "sin(x)", "x**2*y", "tan(pi/7)", "hermite(8, x)"]))
        count = draw(st.integers(1, 2100 // len(term) + 2))
        text = "+".join([term] * count)
    return dump(_with_expression(draw, text), draw(st.sampled_from([None, True, False])))


LOOKALIKES = {
    "a": ["\u0430", "\uff41", "\U0001d44e"],
    "c": ["\u0441", "\uff43"],
    "e": ["\u0435", "\uff45", "\u212f"],
    "i": ["\u0456", "\uff49", "\u0131"],
    "m": ["\uff4d", "\U0001d45a"],
    "n": ["\uff4e", "\u0578"],
    "o": ["\u043e", "\uff4f", "\u03bf", "0"],
    "p": ["\u0440", "\uff50", "\u03c1"],
    "s": ["\u0455", "\uff53"],
    "x": ["\u0445", "\uff58", "\u00d7", "\U0001d465"],
    "y": ["\u0443", "\uff59"],
    "Z": ["\u0396", "\uff3a"],
    "1": ["\uff11", "\u0661", "l"],
    "2": ["\uff12", "\u0662"],
    ":": ["\uff1a", "\u02d0"],
    "-": ["\u2010", "\u2212", "\u2013"],
    " ": ["\u00a0", "\u2003", "\u3000"],
    "*": ["\u2217", "\uff0a"],
    "/": ["\u2215", "\uff0f"],
    "(": ["\uff08"],
}
INVISIBLE = [
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u200e",
    "\u200f",
    "\u202a",
    "\u202b",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2069",
    "\u0301",
    "\u2028",
    "\u2029",
    "\u0085",
    "\u00ad",
]


@st.composite
def unicode_lookalikes(draw: st.DrawFn) -> str:
    text = list(draw(st.sampled_from(PROBLEM_TEXTS)))
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            candidates = [i for i, c in enumerate(text) if c in LOOKALIKES]
            if candidates:
                i = draw(st.sampled_from(candidates))
                text[i] = draw(st.sampled_from(LOOKALIKES[text[i]]))
        else:
            i = draw(st.integers(0, len(text)))
            text.insert(i, draw(st.sampled_from(INVISIBLE)))
    return "".join(text)


# -- the tests ------------------------------------------------------------------------------


@pytest.mark.slow
@settings(FUZZ, max_examples=examples(400))
@given(document=random_yaml())
def test_random_yaml(document: str, workdir: Path) -> None:
    check_document("random-yaml", document, workdir)


@pytest.mark.slow
@settings(FUZZ, max_examples=examples(300))
@given(document=mutated_problem())
def test_mutated_problems(document: str, workdir: Path) -> None:
    check_document("mutated-problems", document, workdir)


@pytest.mark.slow
@settings(FUZZ, max_examples=examples(150))
@given(document=deep_nesting())
def test_deep_nesting(document: str, workdir: Path) -> None:
    check_document("deep-nesting", document, workdir)


@pytest.mark.slow
@settings(FUZZ, max_examples=examples(100))
@given(document=anchors_and_aliases())
def test_anchors_and_aliases(document: str, workdir: Path) -> None:
    check_document("anchors-aliases", document, workdir)


@pytest.mark.slow
@settings(FUZZ, max_examples=examples(250))
@given(document=binary_junk())
def test_binary_junk(document: bytes, workdir: Path) -> None:
    check_document("binary-junk", document, workdir)


@pytest.mark.slow
@settings(FUZZ, max_examples=examples(300))
@given(document=code_injection())
def test_code_injection(document: str, workdir: Path) -> None:
    check_document("code-injection", document, workdir)


@pytest.mark.slow
@settings(FUZZ, max_examples=examples(300))
@given(document=huge_expressions())
def test_huge_exponents_and_long_expressions(document: str, workdir: Path) -> None:
    check_document("huge-expressions", document, workdir)


@pytest.mark.slow
@settings(FUZZ, max_examples=examples(250))
@given(document=unicode_lookalikes())
def test_unicode_lookalikes(document: str, workdir: Path) -> None:
    check_document("unicode-lookalikes", document, workdir)


# -- the command's own printing ----------------------------------------------------------


def test_cli_prints_error_lines_verbatim(tmp_path: Path) -> None:
    path = tmp_path / "problem.yaml"
    lines = ["name: p", "coordinates: [x]", "modes: 2"] + ["# padding"] * 96
    path.write_text("\n".join([*lines, "operator: {potential: 'q + " + "x + " * 20 + "x'}"]))
    result = RUNNER.invoke(app, ["check", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{path}:100: operator.potential: unknown name 'q' (allowed: x, pi, E); "
        "declare constants under `parameters:`"
    ]


# -- what the fuzzing found in deriving settings (regressions) -----------------------------

HIGH_DIM = "coordinates: [" + ", ".join(f"x{i}" for i in range(64)) + "]\nmodes: 512\n"


@pytest.mark.parametrize(
    ("body", "key", "fragment"),
    [
        # RuntimeError (min of an empty tensor) before:
        ('domain: {region: "-1", bounds: {x: [0, 1]}}', "domain.region", "region is empty"),
        ('operator: {potential: "log(-1 - x**2)"}', "operator.potential", "not a finite number"),
        # ValueError (cannot convert float NaN to integer) before; then refused through an
        # overflowing variance; now because V levels off at 1 as x -> -oo (not confining):
        ('operator: {potential: "exp(exp(x))"}', "operator.potential", "does not confine"),
        # a zero sampling scale before (every training point at the centre):
        ('operator: {potential: "-x**2"}', "operator.potential", "extent"),
        # ZeroDivisionError before:
        ('operator: {potential: "x0**2"}', "operator.potential", "extent"),
    ],
)
def test_prepare_refuses_what_it_cannot_derive_settings_from(
    body: str, key: str, fragment: str, tmp_path: Path, one_thread: None
) -> None:
    path = tmp_path / "problem.yaml"
    head = HIGH_DIM if "x0" in body else "coordinates: [x]\nmodes: 2\n"
    path.write_text("name: p\n" + head + body + "\n")
    with pytest.raises(ProblemError) as info:
        prepare(load_problem(path))
    [issue] = info.value.errors
    assert (issue.line, issue.key) == (4, key) and fragment in issue.message
    assert str(issue).startswith(f"{path}:4: {key}: cannot derive" if "potential" in key else "")
