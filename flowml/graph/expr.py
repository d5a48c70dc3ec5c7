"""Safe expressions for live params: ``0.5 + 0.5*sin(t*0.7)``.

An expression is parsed with :mod:`ast` and compiled into a tree of small Python closures;
nothing is ever passed to ``eval``/``exec``. The compiler knows which sub-expressions are
always numbers (``Code.kind``): operators on those skip the per-evaluation type checks, and a
part that depends on nothing (``2*pi``) is computed once, when the expression is parsed. Only
this is allowed:

- numbers, ``true``/``false`` (or ``True``/``False``), strings, and ``[a, b]`` / ``(a, b)`` lists
  (for vector params: ``[960 + 200*sin(t), 540]``);
- ``+ - * / // % **``, comparisons, ``and or not``, ``a if cond else b``;
- the names ``t`` (the frame's time in seconds), ``frame`` (the frame index), the constants
  ``pi tau e inf``, the functions in :data:`FUNCTIONS`;
- ``node.name``: another node's param (its current value, OSC changes included) or one of its
  scalar outputs (the value of the last finished frame, 0 before the first).

Bounded by construction, so that no expression can hold a thread (and the GIL) for long or
exhaust memory:

- the text is at most :data:`MAX_LENGTH` characters, at most :data:`MAX_STEPS` operations
  (syntax-tree nodes) nested at most :data:`MAX_DEPTH` deep; there are no loops or calls of
  user code, so one evaluation is at most ``MAX_STEPS`` steps, each of bounded cost;
- arithmetic works on numbers only (no ``[0]*10**9``), ``**`` is computed in floating point
  (overflow is an error, not a hang), and an integer result beyond :data:`MAX_INT_BITS` bits
  is an error (no multi-second big-int products);
- functions whose cost grows with an argument limit it (:data:`ARG_LIMITS`: ``round``'s
  digits are -400..400). A limited argument that is a constant is checked when the expression
  is parsed (so a graph file names the line and column); one computed from ``t`` or ``frame``
  is checked at every evaluation.

Errors are ``ExprError`` with a message that says what to write instead, and the column.
"""

from __future__ import annotations

import ast
import difflib
import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple

__all__ = ["Expression", "ExprError", "parse_expression", "FUNCTIONS", "CONSTANTS", "VARIABLES",
           "MAX_LENGTH", "MAX_STEPS", "MAX_DEPTH", "MAX_INT_BITS", "ARG_LIMITS"]

MAX_LENGTH = 1000
MAX_STEPS = 500      # syntax-tree nodes: each is evaluated at most once per evaluation
MAX_DEPTH = 100      # nesting of operations and calls (t+t+...+t nests once per '+')
MAX_INT_BITS = 1100  # integers up to about 10**330 (a float's range, and some)
MAX_DIGITS = 400     # round(x, n): |n| beyond a float's 324 digits changes nothing
VARIABLES = ("t", "frame")
CONSTANTS: dict[str, float] = {"pi": math.pi, "tau": math.tau, "e": math.e, "inf": math.inf,
                               "true": True, "false": False, "True": True, "False": False}

Refs = Callable[[str, str], Any]  # (node, name) -> value


class ExprError(ValueError):
    """A bad expression (at parse time) or a failed evaluation (at run time).

    ``col`` is the 1-based column in the expression text where the problem is (0: unknown).
    """

    def __init__(self, message: str, col: int = 0):
        super().__init__(message)
        self.message, self.col = message, col


# -- the whitelist of functions -----------------------------------------------------------------

def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def _mix(a: float, b: float, x: float) -> float:
    return a + (b - a) * x


def _smoothstep(e0: float, e1: float, x: float) -> float:
    if e0 == e1:
        return 0.0 if x < e0 else 1.0
    u = _clamp((x - e0) / (e1 - e0), 0.0, 1.0)
    return u * u * (3 - 2 * u)


def _fract(x: float) -> float:
    return x - math.floor(x)


def _rand(x: float) -> float:
    """A repeatable pseudo-random number in [0, 1) for each integer part of ``x``."""
    return _fract(math.sin(math.floor(x) * 12.9898 + 78.233) * 43758.5453)


def _noise(x: float) -> float:
    """Smooth 1-D value noise in [0, 1): a new random value at each integer, eased between."""
    i = math.floor(x)
    return _mix(_rand(i), _rand(i + 1), _smoothstep(0.0, 1.0, x - i))


def _sign(x: float) -> float:
    return (x > 0) - (x < 0)


def _log(x: float, base: float = math.e) -> float:
    return math.log(x, base)


def _round(x: float, n: int = 0) -> float:
    return round(x, int(n))


ARG_LIMITS: dict[str, tuple[tuple[int, float, float, str], ...]] = {
    # name: ((argument index, lowest, highest, what it is), ...): arguments whose size sets the
    # cost of the call; checked at parse time when constant, else at each evaluation
    "round": ((1, -MAX_DIGITS, MAX_DIGITS, "the number of digits"),),
}


FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int, str]] = {
    # name: (function, fewest args, most args, help)
    "sin": (math.sin, 1, 1, "sine (radians)"), "cos": (math.cos, 1, 1, "cosine"),
    "tan": (math.tan, 1, 1, "tangent"), "asin": (math.asin, 1, 1, "arc sine"),
    "acos": (math.acos, 1, 1, "arc cosine"), "atan": (math.atan, 1, 1, "arc tangent"),
    "atan2": (math.atan2, 2, 2, "atan2(y, x)"), "sinh": (math.sinh, 1, 1, "hyperbolic sine"),
    "cosh": (math.cosh, 1, 1, "hyperbolic cosine"), "tanh": (math.tanh, 1, 1, "hyperbolic tangent"),
    "exp": (math.exp, 1, 1, "e**x"), "log": (_log, 1, 2, "log(x[, base])"),
    "log2": (math.log2, 1, 1, "base-2 log"), "log10": (math.log10, 1, 1, "base-10 log"),
    "sqrt": (math.sqrt, 1, 1, "square root"), "pow": (math.pow, 2, 2, "pow(x, y) = x**y"),
    "hypot": (math.hypot, 1, 8, "Euclidean length"), "abs": (abs, 1, 1, "absolute value"),
    "min": (min, 2, 16, "smallest argument"), "max": (max, 2, 16, "largest argument"),
    "floor": (math.floor, 1, 1, "round down"), "ceil": (math.ceil, 1, 1, "round up"),
    "round": (_round, 1, 2, "round(x[, digits])"), "trunc": (math.trunc, 1, 1, "toward zero"),
    "sign": (_sign, 1, 1, "-1, 0 or 1"), "fract": (_fract, 1, 1, "x - floor(x)"),
    "degrees": (math.degrees, 1, 1, "radians to degrees"),
    "radians": (math.radians, 1, 1, "degrees to radians"),
    "clamp": (_clamp, 3, 3, "clamp(x, lo, hi)"), "mix": (_mix, 3, 3, "mix(a, b, x): a..b as x goes 0..1"),
    "lerp": (_mix, 3, 3, "same as mix"), "step": (lambda e, x: 0.0 if x < e else 1.0, 2, 2, "step(edge, x)"),
    "smoothstep": (_smoothstep, 3, 3, "smoothstep(e0, e1, x)"),
    "saw": (_fract, 1, 1, "ramp 0..1, period 1"),
    "tri": (lambda x: 1 - abs(2 * _fract(x) - 1), 1, 1, "triangle 0..1..0, period 1"),
    "square": (lambda x: 1.0 if _fract(x) < 0.5 else 0.0, 1, 1, "1 then 0, period 1"),
    "rand": (_rand, 1, 1, "repeatable random 0..1 for each integer part of x"),
    "noise": (_noise, 1, 1, "smooth random 0..1, a new value at each integer"),
    "int": (int, 1, 1, "toward zero, as an integer"), "float": (float, 1, 1, "as a float"),
    "bool": (bool, 1, 1, "as true/false"),
}


# -- the compiled expression --------------------------------------------------------------------

class _Env(NamedTuple):  # made at every evaluation: a tuple is cheaper than a frozen dataclass
    t: float
    frame: int
    refs: Refs


Code = Callable[[_Env], Any]

FLOAT, NUMBER = "float", "number"
"""What the compiler knows of a sub-expression's value, its code's ``kind``: always a float, or
always a number (an int, a bool or a float); no ``kind``: anything (a string, a list, another
node's value), checked by the operator that uses it at each evaluation."""

_UNSET = object()


def _typed(code: Code, kind: str | None, const: Any = _UNSET) -> Code:
    """``code`` marked with its ``kind`` and, when it depends on nothing, its value ``const``."""
    code.kind = kind  # type: ignore[attr-defined]
    if const is not _UNSET:
        code.const = const  # type: ignore[attr-defined]
    return code


def _kind(code: Code) -> str | None:
    return getattr(code, "kind", None)


def _join(*codes: Code) -> str | None:
    """The kind of a value that is one of ``codes``' values."""
    kinds = {_kind(c) for c in codes}
    return FLOAT if kinds == {FLOAT} else NUMBER if None not in kinds else None


@dataclass(frozen=True)
class Expression:
    """A parsed expression. Call ``evaluate(t, frame, refs)`` each frame.

    ``refs`` lists the ``(node, name)`` pairs it reads; ``uses_time`` says whether its value
    depends on ``t`` or ``frame`` (if neither and no refs, it is a constant).
    """

    text: str
    refs: frozenset[tuple[str, str]]
    uses_time: bool
    _code: Code = field(repr=False, compare=False)

    def evaluate(self, t: float = 0.0, frame: int = 0, refs: Refs | None = None) -> Any:
        """The value at time ``t`` / frame ``frame``; raises ``ExprError`` if it cannot be
        computed (division by zero, a math domain error, an unknown reference...)."""
        env = _Env(float(t), frame, refs or _no_refs)
        try:
            return self._code(env)
        except ExprError as exc:
            if exc.col:  # a limit the expression ran into: say where, in which text
                raise ExprError(f"{self.text!r}: {exc.message} (column {exc.col})", exc.col) from None
            raise
        except ZeroDivisionError:
            raise ExprError(f"{self.text!r}: division by zero") from None
        except OverflowError:
            raise ExprError(f"{self.text!r}: a number got too large") from None
        except (ValueError, TypeError) as exc:
            raise ExprError(f"{self.text!r}: {exc}") from None
        except (RecursionError, MemoryError):
            raise ExprError(f"{self.text!r}: too deep or too large to compute") from None


def _no_refs(node: str, name: str) -> Any:
    raise ExprError(f"{node}.{name} cannot be read here")


def parse_expression(text: str) -> Expression:
    """Parse and check ``text``; raises ``ExprError`` naming the problem and its column."""
    if not isinstance(text, str):
        raise ExprError(f"an expression is a string, e.g. \"0.5 + 0.5*sin(t)\", not {text!r}")
    if not text.strip():
        raise ExprError("the expression is empty; write e.g. \"0.5 + 0.5*sin(t)\"")
    if len(text) > MAX_LENGTH:
        raise ExprError(f"the expression is {len(text)} characters long; at most {MAX_LENGTH}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        col = (exc.offset or 0) + (len(text) - len(text.lstrip()))
        raise ExprError(f"invalid syntax: {exc.msg}", col) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExprError(f"cannot parse the expression: {exc}") from None
    lead = len(text) - len(text.lstrip())
    _check_size(tree.body, lead)
    compiler = _Compiler(lead)
    try:
        code = compiler.compile(tree.body)
    except RecursionError:
        raise ExprError("the expression is nested too deeply") from None
    return Expression(text, frozenset(compiler.refs), compiler.uses_time, code)


def _check_size(root: ast.AST, lead: int) -> None:
    """At most MAX_STEPS nodes nested at most MAX_DEPTH deep (walked without recursion)."""
    steps, stack = 0, [(root, 1)]
    while stack:
        node, depth = stack.pop()
        steps += isinstance(node, ast.expr)  # operations and operands, not their contexts
        col = getattr(node, "col_offset", -1) + 1 + lead
        if steps > MAX_STEPS:
            raise ExprError(f"the expression has more than {MAX_STEPS} operations; split the "
                            "work over several params", col)
        if depth > MAX_DEPTH:
            raise ExprError(f"the expression is nested more than {MAX_DEPTH} deep", col)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _int_ok(value: Any, op: str, col: int) -> Any:
    """``value``, unless it is an integer too large to compute with cheaply."""
    if type(value) is int and value.bit_length() > MAX_INT_BITS:
        raise ExprError(f"'{op}' gave an integer of {value.bit_length()} bits; at most "
                        f"{MAX_INT_BITS} (write a float, e.g. 1e300, for huge numbers)", col)
    return value


_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: math.pow,  # in floating point: overflow is an error, not a hang
}
_FLOAT_RESULTS = frozenset((
    "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh", "exp", "log",
    "log2", "log10", "sqrt", "pow", "hypot", "degrees", "radians", "rand", "noise", "smoothstep",
    "step", "square", "float"))
"""The functions whose value is always a float; every other one's is a number."""
_CMPOPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
}
_SYMBOL = {ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>",
           ast.MatMult: "@", ast.Invert: "~", ast.Is: "is", ast.IsNot: "is not", ast.In: "in",
           ast.NotIn: "not in"}
_HINTS = {ast.BitAnd: "use 'and'", ast.BitOr: "use 'or'", ast.BitXor: "use '**' for powers",
          ast.Invert: "use 'not' or '-'"}


def _number(x: Any, op: str) -> Any:
    if isinstance(x, (int, float)):  # bool is an int
        return x
    raise ExprError(f"'{op}' works on numbers, not on {type(x).__name__} {x!r}; "
                    "for a vector write each element, e.g. [a*2, b*2]")


class _Compiler:
    """Checks an AST against the whitelist and turns it into closures."""

    def __init__(self, lead: int):
        self.lead = lead
        self.refs: set[tuple[str, str]] = set()
        self.uses_time = False

    def fail(self, node: ast.AST, message: str) -> ExprError:
        return ExprError(message, getattr(node, "col_offset", -1) + 1 + self.lead)

    def compile(self, node: ast.AST) -> Code:
        method = getattr(self, "c_" + type(node).__name__, None)
        if method is None:
            raise self.fail(node, f"{_describe(node)} is not allowed in an expression; use numbers, "
                                  "t, frame, + - * / ** %, comparisons, 'a if c else b' and "
                                  "math functions like sin(t)")
        return method(node)

    def c_Constant(self, node: ast.Constant) -> Code:
        value = node.value
        if not isinstance(value, (int, float, str)) or isinstance(value, complex):
            raise self.fail(node, f"the constant {value!r} is not allowed; use numbers or strings")
        if type(value) is int and value.bit_length() > MAX_INT_BITS:
            raise self.fail(node, f"the integer is {value.bit_length()} bits long; at most "
                                  f"{MAX_INT_BITS} (write a float, e.g. 1e300, for huge numbers)")
        return _constant(value)

    def c_Name(self, node: ast.Name) -> Code:
        name = node.id
        if name == "t":
            self.uses_time = True
            return _typed(lambda env: env.t, FLOAT)
        if name == "frame":
            self.uses_time = True
            return _typed(lambda env: env.frame, NUMBER)
        if name in CONSTANTS:
            return _constant(CONSTANTS[name])
        if name in FUNCTIONS:
            raise self.fail(node, f"{name} is a function: call it, e.g. {name}(t)")
        raise self.fail(node, _unknown_name(name))

    def c_Attribute(self, node: ast.Attribute) -> Code:
        if not isinstance(node.value, ast.Name):
            raise self.fail(node, "only node.param or node.output can be read with '.', "
                                  "e.g. fader.value")
        key = (node.value.id, node.attr)
        self.refs.add(key)
        return lambda env: env.refs(*key)

    def c_BinOp(self, node: ast.BinOp) -> Code:
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise self.fail(node, _bad_operator(node.op))
        left, right = self.compile(node.left), self.compile(node.right)
        sym = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
               ast.Mod: "%", ast.Pow: "**"}[type(node.op)]
        col = node.col_offset + 1 + self.lead
        if _kind(left) is None or _kind(right) is None:  # checked each time
            if sym in ("+", "-", "*", "//", "%"):  # int results can grow: check their size
                return lambda env: _int_ok(op(_number(left(env), sym), _number(right(env), sym)), sym, col)
            return lambda env: op(_number(left(env), sym), _number(right(env), sym))
        if sym in ("/", "**") or FLOAT in (_kind(left), _kind(right)):
            return _folded(_binary(op, left, right), FLOAT, [left, right])
        return _folded(lambda env: _int_ok(op(left(env), right(env)), sym, col), NUMBER, [left, right])

    def c_UnaryOp(self, node: ast.UnaryOp) -> Code:
        operand = self.compile(node.operand)
        kind = _kind(operand)
        if isinstance(node.op, ast.USub):
            if kind is not None:
                return _folded(lambda env: -operand(env), kind, [operand])
            return lambda env: -_number(operand(env), "-")
        if isinstance(node.op, ast.UAdd):
            if kind == FLOAT:
                return operand
            if kind is not None:  # +true is 1
                return _folded(lambda env: +operand(env), kind, [operand])
            return lambda env: +_number(operand(env), "+")
        if isinstance(node.op, ast.Not):
            return _typed(lambda env: not operand(env), NUMBER)
        raise self.fail(node, _bad_operator(node.op))

    def c_BoolOp(self, node: ast.BoolOp) -> Code:
        parts = [self.compile(v) for v in node.values]
        if isinstance(node.op, ast.And):
            def both(env: _Env) -> Any:
                value: Any = True
                for p in parts:
                    value = p(env)
                    if not value:
                        return value
                return value
            return _typed(both, _join(*parts))

        def either(env: _Env) -> Any:
            value: Any = False
            for p in parts:
                value = p(env)
                if value:
                    return value
            return value
        return _typed(either, _join(*parts))

    def c_Compare(self, node: ast.Compare) -> Code:
        ops = []
        for op in node.ops:
            fn = _CMPOPS.get(type(op))
            if fn is None:
                raise self.fail(node, _bad_operator(op))
            ops.append(fn)
        first = self.compile(node.left)
        rest = [self.compile(c) for c in node.comparators]

        def compare(env: _Env) -> bool:
            a = first(env)
            for fn, nxt in zip(ops, rest):
                b = nxt(env)
                if not fn(a, b):
                    return False
                a = b
            return True
        return _typed(compare, NUMBER)

    def c_IfExp(self, node: ast.IfExp) -> Code:
        test, yes, no = self.compile(node.test), self.compile(node.body), self.compile(node.orelse)
        return _typed(lambda env: yes(env) if test(env) else no(env), _join(yes, no))

    def c_Call(self, node: ast.Call) -> Code:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise self.fail(node, f"unknown function {name!r}" + _suggest(name, FUNCTIONS)
                            + f"; functions: {', '.join(sorted(FUNCTIONS))}")
        name = node.func.id
        fn, lo, hi, doc = FUNCTIONS[name]
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(node, f"{name}() takes plain arguments only: {doc}")
        if not lo <= len(node.args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise self.fail(node, f"{name}() takes {want} argument{'s' if hi > 1 else ''}, "
                                  f"got {len(node.args)}: {doc}")
        args = [self.compile(a) for a in node.args]
        limits = [lim for lim in ARG_LIMITS.get(name, ()) if lim[0] < len(args)]
        for index, lo, hi, what in limits:  # a constant argument is checked now, once
            arg = node.args[index]
            if _is_constant(arg):
                try:
                    value = args[index](_CONST_ENV)
                except ExprError:
                    raise
                except Exception:  # e.g. 1/0: reported when evaluated, as it always was
                    continue
                _within(name, value, lo, hi, what, arg.col_offset + 1 + self.lead)
        kind = FLOAT if name in _FLOAT_RESULTS else NUMBER
        if limits:
            col = node.col_offset + 1 + self.lead

            def limited(env: _Env) -> Any:
                values = [_number(a(env), name) for a in args]
                for index, lo, hi, what in limits:
                    _within(name, values[index], lo, hi, what, col)
                return fn(*values)
            return _typed(limited, kind)
        if all(_kind(a) is not None for a in args):  # numbers: no checks
            if len(args) == 1:
                only = args[0]
                return _folded(lambda env: fn(only(env)), kind, args)
            return _folded(lambda env: fn(*[a(env) for a in args]), kind, args)
        if len(args) == 1:
            only = args[0]
            return _typed(lambda env: fn(_number(only(env), name)), kind)
        return _typed(lambda env: fn(*(_number(a(env), name) for a in args)), kind)

    def c_List(self, node: ast.List | ast.Tuple) -> Code:
        items = [self.compile(e) for e in node.elts]
        return lambda env: [i(env) for i in items]

    c_Tuple = c_List


def _constant(value: Any) -> Code:
    kind = FLOAT if type(value) is float else NUMBER if isinstance(value, (int, float)) else None
    return _typed(lambda env: value, kind, value)


def _binary(op: Callable[[Any, Any], Any], left: Code, right: Code) -> Code:
    """``op`` of two numbers (a constant side read once, not called)."""
    if hasattr(right, "const"):
        b = right.const  # type: ignore[attr-defined]
        return lambda env: op(left(env), b)
    if hasattr(left, "const"):
        a = left.const  # type: ignore[attr-defined]
        return lambda env: op(a, right(env))
    return lambda env: op(left(env), right(env))


def _folded(code: Code, kind: str, operands: list[Code]) -> Code:
    """``code``, of a ``kind``, on ``operands``; when they are all constants, its value is
    computed now. An error is left for evaluation time, where it was always reported (``1/0``)."""
    if all(hasattr(c, "const") for c in operands):
        try:
            value = code(_CONST_ENV)
        except Exception:
            return _typed(code, kind)
        return _typed(lambda env: value, kind, value)
    return _typed(code, kind)


def _is_constant(node: ast.AST) -> bool:
    """True when ``node``'s value depends on nothing (no t, frame or node.name)."""
    return not any(isinstance(n, (ast.Name, ast.Attribute)) and not
                   (isinstance(n, ast.Name) and (n.id in CONSTANTS or n.id in FUNCTIONS))
                   for n in ast.walk(node))


def _within(name: str, value: Any, lo: float, hi: float, what: str, col: int) -> None:
    if not isinstance(value, (int, float)) or not lo <= value <= hi:
        shown = f"{value:.6g}" if isinstance(value, float) else repr(value) if not isinstance(
            value, int) or value.bit_length() < 64 else f"an integer of {value.bit_length()} bits"
        raise ExprError(f"{name}(): {what} must be from {lo:g} to {hi:g}, got {shown}", col)


_CONST_ENV = _Env(0.0, 0, lambda node, name: 0.0)


def _describe(node: ast.AST) -> str:
    names = {"Subscript": "indexing ([...])", "Lambda": "lambda", "Dict": "a dict", "Set": "a set",
             "ListComp": "a comprehension", "GeneratorExp": "a generator", "JoinedStr": "an f-string",
             "NamedExpr": "':='", "Starred": "'*'", "Await": "await", "Yield": "yield",
             "DictComp": "a comprehension", "SetComp": "a comprehension", "Slice": "slicing"}
    return names.get(type(node).__name__, type(node).__name__)


def _bad_operator(op: ast.AST) -> str:
    sym = _SYMBOL.get(type(op), type(op).__name__)
    hint = _HINTS.get(type(op))
    return f"the operator '{sym}' is not allowed" + (f"; {hint}" if hint else "")


def _suggest(name: str, choices: Mapping[str, Any] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _unknown_name(name: str) -> str:
    names = (*VARIABLES, *[c for c in CONSTANTS if c.islower()])
    hint = _suggest(name, (*names, *FUNCTIONS))
    return (f"unknown name {name!r}{hint} (names: {', '.join(names)}; another node's param or "
            "output is read as node.name)")
