"""Safe expression parsing and compilation to torch / numpy."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import scipy.special as sps
import sympy as sp
import torch

from nsvd_cli.expr import (
    BASE_FUNCTIONS,
    REFERENCE_FUNCTIONS,
    ExpressionError,
    compile_numpy,
    compile_numpy_condition,
    compile_torch,
    evaluate_constant,
    parse_condition,
    parse_expression,
)

XY = ["x", "y"]

HOSTILE = [
    "__import__('os').system('x')",
    "().__class__",
    "().__class__.__bases__[0].__subclasses__()",
    "lambda: 1",
    "9**9**9**9",
    "2**100000",
    "'x'*10000",
    "x" * 10_000,
    "x.real",
    "x[0]",
    "[i for i in (1, 2)]",
    "{1: 2}",
    "sin(x=1)",
    "sin(*[x])",
    "(x := 1)",
    "x if y else 1",
    "f'{x}'",
    "1j",
    "10**13**2",
    "(2**64)**64",
    "1e12**64",
    "99999999999999999999",
    "1e400",
    "factorial(100000)",
    "exec('1')",
    "eval",
    "getattr(x, 'real')",
    "-" * 1500 + "x",
    "(" * 500 + "x" + ")" * 500,
    "Piecewise((1e12, True))**64",
    "sqrt(-1)",
    "1/0",
    "x % 0",
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_text_is_refused_quickly(text: str) -> None:
    start = time.process_time()
    with pytest.raises(ExpressionError) as info:
        parse_expression(text, XY, extra_functions=REFERENCE_FUNCTIONS)
    assert time.process_time() - start < 0.5
    message = str(info.value)
    assert message and "\n" not in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("x.real", "attribute"),
        ("().__class__", "attribute"),
        ("lambda: 1", "lambda"),
        ("9**9**9**9", "power tower"),
        ("2**100000", "exponent 100000 is too large"),
        ("x" * 10_000, "too long"),
        ("'x'*10000", "strings"),
        ("[i for i in (1, 2)]", "comprehension"),
        ("sin(x=1)", "keyword"),
        ("foo(x)", "unknown function 'foo'"),
        ("x < 1", "conditions"),
        ("1e400", "too large"),
        ("factorial(171)", "not allowed here"),
    ],
)
def test_refusal_messages_say_why(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError, match=fragment):
        parse_expression(text, XY)


def test_factorial_literal_limit() -> None:
    ok = parse_expression("factorial(170)", [], extra_functions=REFERENCE_FUNCTIONS)
    assert ok == sp.factorial(170)
    with pytest.raises(ExpressionError, match="too large"):
        parse_expression("factorial(171)", [], extra_functions=REFERENCE_FUNCTIONS)
    with pytest.raises(ExpressionError, match="too large"):
        parse_expression("binomial(200, 3)", [], extra_functions=REFERENCE_FUNCTIONS)
    with pytest.raises(ExpressionError, match="too large"):
        parse_expression("hermite(1000, x)", ["x"], extra_functions=REFERENCE_FUNCTIONS)


def test_unknown_names_are_listed() -> None:
    with pytest.raises(ExpressionError) as info:
        parse_expression("q * x", ["x", "y", "Z"])
    assert str(info.value) == (
        "unknown name 'q' (allowed: x, y, Z, pi, E); declare constants under `parameters:`"
    )
    with pytest.raises(ExpressionError, match=r"'\^' is XOR .* write powers as x\*\*2"):
        parse_expression("x^2", XY)
    with pytest.raises(ExpressionError, match="'sin' is a function"):
        parse_expression("sin + x", XY)
    with pytest.raises(ExpressionError, match="'x' is not a function"):
        parse_expression("x(1)", XY)
    with pytest.raises(ExpressionError, match="not allowed here"):
        parse_expression("hermite(2, x)", XY)


def test_exponent_bound_uses_known_parameter_values() -> None:
    parse_expression("x**p", ["x", "p"], values={"p": 3})
    with pytest.raises(ExpressionError, match="exponent"):
        parse_expression("x**p", ["x", "p"], values={"p": 1000})
    # Unknown values (quantum numbers) are not bounded at parse time.
    parse_expression("x**n", ["x", "n"])


def test_long_sums_are_fine() -> None:
    names = [f"x{i}" for i in range(64)]
    text = " + ".join(f"{n}**2" for n in names)
    start = time.process_time()
    expr = parse_expression(text, names)
    assert time.process_time() - start < 0.5
    assert len(expr.args) == 64
    fn = compile_numpy(expr, names)
    assert fn(np.ones((3, 64))).tolist() == [64.0, 64.0, 64.0]


def test_parse_builds_the_expected_sympy() -> None:
    x, y = sp.symbols("x y", real=True)
    assert parse_expression("x**2/2 + y", XY) == x**2 / 2 + y
    assert parse_expression("1/2", []) == sp.Rational(1, 2)
    assert parse_expression("abs(x) - Abs(y)", XY) == sp.Abs(x) - sp.Abs(y)
    assert parse_expression("2*pi*E", []) == 2 * sp.pi * sp.E
    assert parse_expression("x - y - 1", XY) == x - y - 1
    assert parse_expression("x / y / 2", XY) == x / y / 2
    assert parse_expression("x * 7 % 3", XY) == sp.Mod(7 * x, 3)
    assert parse_expression(3, []) == 3
    assert parse_expression(0.25, []) == sp.Float(0.25)
    with pytest.raises(ExpressionError):
        parse_expression(True, [])  # type: ignore[arg-type]
    pw = parse_expression("Piecewise((x, x > 0), (0, True))", XY)
    assert isinstance(pw, sp.Piecewise)


def test_function_constants_are_exported() -> None:
    assert "Piecewise" in BASE_FUNCTIONS and "erf" in BASE_FUNCTIONS
    assert set(REFERENCE_FUNCTIONS) >= {"hermite", "assoc_laguerre", "besselj", "binomial"}


def test_conditions() -> None:
    cond = parse_condition("abs(m) <= l and not m == 3", ["m", "l"], integer_names=["m", "l"])
    fn = compile_numpy_condition(cond, ["m", "l"])
    pts = np.array([[0, 0], [1, 0], [-2, 2], [3, 5]], dtype=float)
    assert fn(pts).tolist() == [True, False, True, False]
    chained = parse_condition("0 < x < 1", ["x"])
    out = compile_numpy_condition(chained, ["x"])(np.array([[-1.0], [0.5], [2.0]]))
    assert out.tolist() == [False, True, False]
    with pytest.raises(ExpressionError, match="condition"):
        parse_condition("x + 1", ["x"])


TORCH_CASES = [
    "x**2/2 + y**2/2",
    "-1/sqrt(x**2 + y**2)",
    "Piecewise((x**2, x > 0), (y, True))",
    "Piecewise((1, x > 0), (0, True))",
    "Piecewise((x, (x > 0) & (y > 0)), (-x, (x < -1) | ~(y > -1)), (y**3, True))",
    "Piecewise((x, x > 0 and y > 0), (-x, x < -1 or not y > -1), (y**3, True))",
    "Max(0, x, y) + Min(x, 1)",
    "Abs(x)*sign(y) + atan2(y, x)",
    "erf(x) + tanh(y) + cosh(x)/10 + sinh(y)/10",
    "exp(-x**2)*cos(3*y) + sin(x)*tan(y/4)",
    "log(1 + x**2) + x**3 - y**-2",
    "(x**2 + y**2)**(3/2) + 2**x",
    "x % 1.5",
    "sqrt(2) + pi",
    "7",
]


@pytest.mark.parametrize("text", TORCH_CASES)
def test_torch_matches_numpy_and_keeps_dtype(text: str) -> None:
    expr = parse_expression(text, XY)
    fn_t = compile_torch(expr, XY)
    fn_n = compile_numpy(expr, XY)
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(17, 2, generator=g, dtype=torch.float64) * 2 + 0.1
    out = fn_t(pts)
    assert out.shape == (17,) and out.dtype == torch.float64
    ref = fn_n(pts.numpy())
    assert ref.shape == (17,) and ref.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-12)
    out32 = fn_t(pts.float())
    assert out32.dtype == torch.float32 and out32.shape == (17,)


@pytest.mark.parametrize("text", TORCH_CASES)
def test_torch_autograd_and_forward_mode(text: str) -> None:
    expr = parse_expression(text, XY)
    fn = compile_torch(expr, XY)
    pts = torch.tensor([[0.3, -0.7], [1.2, 0.4], [-0.5, 2.0]], dtype=torch.float64)
    x = pts.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(x).sum(), x)
    assert grad.shape == (3, 2)
    tangent = torch.tensor([[1.0, 0.0]] * 3, dtype=torch.float64)
    _, jvp = torch.func.jvp(fn, (pts,), (tangent,))
    torch.testing.assert_close(jvp, grad[:, 0])
    if expr.free_symbols:
        # Finite differences agree with autograd away from kinks.
        h = 1e-6
        fd = (fn(pts + h * tangent) - fn(pts - h * tangent)) / (2 * h)
        torch.testing.assert_close(fd, grad[:, 0], rtol=1e-5, atol=1e-5)


def test_second_derivatives_through_autograd() -> None:
    fn = compile_torch(parse_expression("x**2*y + exp(x)", XY), XY)
    x = torch.tensor([[0.5, 2.0]], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(fn(x).sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g[:, 0].sum(), x)
    torch.testing.assert_close(h[0, 0], torch.tensor(2 * 2.0 + math.exp(0.5), dtype=torch.float64))


def test_constant_expressions_broadcast_and_differentiate() -> None:
    fn = compile_torch(parse_expression("0", []), XY)
    x = torch.zeros(5, 2, requires_grad=True)
    out = fn(x)
    assert out.shape == (5,) and out.dtype == torch.float32
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.all(grad == 0)
    assert compile_numpy(sp.Integer(3), XY)(np.zeros((4, 2))).tolist() == [3.0] * 4


def test_parameters_are_bound_and_vmap_shapes_work() -> None:
    expr = parse_expression("-Z/sqrt(x**2 + y**2)", ["x", "y", "Z"])
    fn = compile_torch(expr, [sp.Symbol("x"), "y"], {"Z": 2.0})
    pts = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    assert fn(pts).item() == pytest.approx(-0.4)
    assert fn(pts[0]).shape == ()
    out = torch.func.vmap(fn)(pts)
    assert out.shape == (1,)
    with pytest.raises(ExpressionError, match="unknown name 'Z'"):
        compile_torch(expr, XY)
    with pytest.raises(ValueError, match="coordinates"):
        fn(torch.zeros(3, 3))


def test_non_finite_values_are_not_masked() -> None:
    fn = compile_torch(parse_expression("-1/sqrt(x**2 + y**2)", XY), XY)
    out = fn(torch.zeros(2, 2))
    assert torch.isinf(out).all()
    assert np.isinf(
        compile_numpy(parse_expression("-1/sqrt(x**2 + y**2)", XY), XY)(np.zeros((1, 2)))
    ).all()


def test_special_functions_numpy_and_torch() -> None:
    names = ["x", "n", "k"]
    text = "hermite(n, x) + laguerre(n, x) + legendre(n, x) + assoc_legendre(n, k, x)"
    expr = parse_expression(
        text, names, extra_functions=REFERENCE_FUNCTIONS, integer_names=["n", "k"]
    )
    lag = parse_expression("assoc_laguerre(n, k, x)", names, extra_functions=REFERENCE_FUNCTIONS)
    pts = np.linspace(-0.9, 0.9, 7)[:, None]
    t = pts[:, 0]
    for n, k in [(0, 0), (1, 1), (4, 2), (7, 3), (5, -2), (2, 3)]:
        params = {"n": n, "k": k}
        ref = (
            sps.eval_hermite(n, t)
            + sps.eval_laguerre(n, t)
            + sps.eval_legendre(n, t)
            + sps.lpmv(k, n, t)
        )
        np.testing.assert_allclose(compile_numpy(expr, ["x"], params)(pts), ref, rtol=1e-10)
        out = compile_torch(expr, ["x"], params)(torch.tensor(pts))
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-12)
        if k >= 0:
            ref_lag = sps.eval_genlaguerre(n, k, t)
            np.testing.assert_allclose(compile_numpy(lag, ["x"], params)(pts), ref_lag)
            out = compile_torch(lag, ["x"], params)(torch.tensor(pts))
            np.testing.assert_allclose(out.numpy(), ref_lag, rtol=1e-10, atol=1e-12)
    bessel = parse_expression(
        "besselj(1, x) * factorial(3) / binomial(4, 2)", ["x"], extra_functions=REFERENCE_FUNCTIONS
    )
    np.testing.assert_allclose(compile_numpy(bessel, ["x"])(pts), sps.jv(1, t), rtol=1e-12)
    with pytest.raises(ExpressionError, match="torch"):
        compile_torch(bessel, ["x"])


def test_sympy_expansion_matches_for_concrete_degrees() -> None:
    x = sp.Symbol("x", real=True)
    expr = parse_expression(
        "hermite(3, x)*exp(-x**2/2)", ["x"], extra_functions=REFERENCE_FUNCTIONS
    )
    assert expr == sp.expand_func(sp.hermite(3, x)) * sp.exp(-(x**2) / 2)


def test_evaluate_constant() -> None:
    assert evaluate_constant(parse_expression("hbar**2/2", ["hbar"]), {"hbar": 2.0}) == 2.0
    assert evaluate_constant(parse_expression("1/2", [])) == 0.5
    assert evaluate_constant(parse_expression("sqrt(2)*pi", [])) == pytest.approx(
        math.sqrt(2) * math.pi
    )
    with pytest.raises(ExpressionError, match="constant"):
        evaluate_constant(parse_expression("x", ["x"]))


def test_compile_refuses_strings() -> None:
    with pytest.raises(TypeError):
        compile_numpy("x", ["x"])  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["0", "Piecewise((1, x > 0), (0, True))", "x**2*y + Max(x, 0)"])
def test_functorch_transforms(text: str) -> None:
    fn = compile_torch(parse_expression(text, XY), XY)
    pts = torch.tensor([[0.5, 1.0], [-0.3, 2.0]], dtype=torch.float64)
    hessian = torch.func.vmap(torch.func.hessian(fn))(pts)
    forward = torch.func.vmap(torch.func.jacfwd(torch.func.jacfwd(fn)))(pts)
    assert hessian.shape == (2, 2, 2)
    torch.testing.assert_close(hessian, forward)


# -- hostile text (found by tests/spec/test_fuzz_problems.py) ------------------------------------


@pytest.mark.parametrize(
    "text", ["1/(x - x)", "log(x - x)", "atan2(x - x, y - y)", "1/sign(y - y)", "sqrt(x - x - 1)"]
)
def test_constants_sympy_folds_to_undefined_values_are_refused(text: str) -> None:
    # SymPy folds these to zoo, nan or I; compilation refused them only at `nsvd solve`.
    with pytest.raises(ExpressionError, match="undefined or infinite|not real"):
        parse_expression(text, XY)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\uff58**2", "'\\uff58' (U+FF58)"),
        ("\u0445 + y", "'\\u0445' (U+0445)"),
        ("x\u200b", "U+200B"),
    ],
)
def test_non_ascii_is_refused(text: str, shown: str) -> None:
    # Python reads a fullwidth x as x (NFKC): what the file shows is not what would run.
    with pytest.raises(ExpressionError, match="non-ASCII character") as info:
        parse_expression(text, XY)
    assert shown in str(info.value)


def test_many_max_arguments_and_high_degree_polynomials_are_quick() -> None:
    start = time.process_time()
    many_max = parse_expression("Max(" + ", ".join(f"sin(x + {i})" for i in range(64)) + ")", XY)
    product = "*".join(f"hermite({170 - i}, x)" for i in range(100))
    polynomials = parse_expression(product, XY, extra_functions=REFERENCE_FUNCTIONS)
    assert time.process_time() - start < 0.5  # was 2.6 s and 0.9 s
    points = np.array([[0.3, 0.0], [-1.2, 0.0]])
    expected = np.max(np.sin(points[:, :1] + np.arange(64)), axis=1)
    np.testing.assert_allclose(compile_numpy(many_max, XY)(points), expected, rtol=1e-12)
    single = parse_expression("hermite(170, x)", XY, extra_functions=REFERENCE_FUNCTIONS)
    np.testing.assert_allclose(
        compile_numpy(single, XY)(points), sps.eval_hermite(170, points[:, 0]), rtol=1e-10
    )
    assert compile_numpy(polynomials, XY)(points * 0.01).shape == (2,)


def test_comparisons_of_piecewise_compile() -> None:
    # SymPy turns `Piecewise(...) > 0` into ITE(...); it validated, then failed to compile
    # at `nsvd solve` ("cannot compile ITE").
    a_text, b_text = "Piecewise((x, y > 0), (y, True))", "Piecewise((y, x > 0), (x, True))"
    text = f"Piecewise((1, {a_text} > {b_text}), (0, True))"
    expr = parse_expression(text, XY)
    assert expr.has(sp.ITE)
    points = np.random.default_rng(0).normal(size=(64, 2))
    a = np.where(points[:, 1] > 0, points[:, 0], points[:, 1])
    b = np.where(points[:, 0] > 0, points[:, 1], points[:, 0])
    expected = (a > b).astype(np.float64)
    np.testing.assert_array_equal(compile_numpy(expr, XY)(points), expected)
    np.testing.assert_array_equal(compile_torch(expr, XY)(torch.tensor(points)).numpy(), expected)
