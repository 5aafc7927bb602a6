"""A safe calculator: evaluate arithmetic by walking Python's AST over a whitelist, never ``eval``.

``safe_eval("2 * (3 + 4) ** 2 / sqrt(16)")`` parses the text with ``ast.parse(mode="eval")`` and
evaluates only these nodes: numbers (int, float), the binary operators ``+ - * / // % **``, unary
``+ -``, parentheses (they only shape the tree), the constants in ``CONSTANTS`` and calls of the
functions in ``FUNCTIONS`` with positional arguments. Anything else (names, attributes, subscripts,
strings, lambdas, comprehensions, keyword arguments...) is refused with a ``ValueError`` that says
what was found. Sizes are bounded so no input can hang the process: the text's length, the
exponent of ``**``, integers' bit length and ``factorial``'s argument.
"""

from __future__ import annotations

import ast
import math
import operator

MAX_LENGTH = 500         # characters of one expression
MAX_EXPONENT = 10_000    # |b| in a ** b
MAX_INT_BITS = 10_000    # every intermediate integer stays below 2 ** MAX_INT_BITS (~3,000 digits)
MAX_FACTORIAL = 1_000

BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _factorial(n):
    if not isinstance(n, int) or not 0 <= n <= MAX_FACTORIAL:
        raise ValueError(f"factorial needs an integer in [0, {MAX_FACTORIAL}], got {n!r}")
    return math.factorial(n)


FUNCTIONS = {"sqrt": math.sqrt, "exp": math.exp, "log": math.log, "log10": math.log10, "log2": math.log2,
             "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin, "acos": math.acos,
             "atan": math.atan, "floor": math.floor, "ceil": math.ceil, "abs": abs, "round": round,
             "min": min, "max": max, "factorial": _factorial}


def _number(value):
    """Refuse results that are not plain numbers or integers past the size bound."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expression must compute a real number, got {type(value).__name__}")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ValueError(f"expression: result too large (over {MAX_INT_BITS} bits)")
    return value


def _power(base, exponent):
    if abs(exponent) > MAX_EXPONENT:
        raise ValueError(f"expression: exponent {exponent} too large (|exponent| <= {MAX_EXPONENT})")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        if (abs(base).bit_length() - 1) * exponent > MAX_INT_BITS:  # 2 ** ((bits - 1) * n) <= |base| ** n
            raise ValueError(f"expression: {base} ** {exponent} is too large (over {MAX_INT_BITS} bits)")
    return base ** exponent


def _eval(node: ast.AST):
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ValueError(f"expression: only numbers are allowed, found {node.value!r}")
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _number(_power(left, right))
        return _number(BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in UNARY:
        return UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name):
        if node.id not in CONSTANTS:
            raise ValueError(f"expression: unknown name {node.id!r}; allowed constants: {', '.join(CONSTANTS)}"
                             f"; functions: {', '.join(FUNCTIONS)}")
        return CONSTANTS[node.id]
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise ValueError(f"expression: only calls of {', '.join(FUNCTIONS)} are allowed, "
                             f"found {ast.unparse(node.func)!r}")
        if node.keywords:
            raise ValueError(f"expression: keyword arguments are not allowed in {node.func.id}()")
        args = [_eval(arg) for arg in node.args]
        try:
            value = FUNCTIONS[node.func.id](*args)
        except ValueError as e:  # math domain errors, factorial's own check
            raise ValueError(f"expression: {node.func.id}({', '.join(map(repr, args))}): {e}") from None
        return _number(value)
    if isinstance(node, ast.Attribute):
        raise ValueError(f"expression: attribute access is not allowed ({ast.unparse(node)!r})")
    raise ValueError(f"expression: {type(node).__name__} is not allowed ({ast.unparse(node)!r})")


def safe_eval(expression: str) -> int | float:
    """The value of an arithmetic ``expression``; ``ValueError`` (naming ``expression``) for anything else."""
    if not isinstance(expression, str):
        raise TypeError(f"expression must be a str, got {type(expression).__name__}")
    if len(expression) > MAX_LENGTH:
        raise ValueError(f"expression is {len(expression)} characters long; at most {MAX_LENGTH}")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"expression is not valid arithmetic: {e.msg} at column {e.offset}") from None
    try:
        return _eval(tree.body)
    except ZeroDivisionError:
        raise ValueError("expression divides by zero") from None
    except OverflowError as e:
        raise ValueError(f"expression overflows a float: {e}") from None
    except (TypeError, RecursionError) as e:  # e.g. sqrt() with no argument, a deeply nested expression
        raise ValueError(f"expression: {e}") from None
