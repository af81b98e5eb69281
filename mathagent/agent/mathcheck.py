"""sympy as an independent second opinion on computational answers.

For problems that are plainly computational (evaluate an expression, solve a
polynomial equation and report its roots, their sum, product or count),
compute the answer independently; `answers` (math-verify) then compares it
with the model's. Anything else is "not checked": a guess is never reported
as a check. Reading and comparing answers is `answers`' job, not this one's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_SYMPY: Any = None


def _sympy() -> Any:
    """sympy, imported on first use (it takes a noticeable moment to load)."""
    global _SYMPY
    if _SYMPY is None:
        import sympy

        _SYMPY = sympy
    return _SYMPY


# ---------------------------------------------------------------- reading answers


def _replace_braced(text: str, command: str, arity: int, build: Any) -> str:
    """Rewrite `\\command{a}{b}` (nested braces allowed) with build(a, b)."""
    out = []
    i = 0
    while True:
        j = text.find(command, i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        k = j + len(command)
        args = []
        for _ in range(arity):
            while k < len(text) and text[k] == " ":
                k += 1
            if k < len(text) and text[k] == "{":
                depth, start = 1, k + 1
                k += 1
                while k < len(text) and depth:
                    depth += {"{": 1, "}": -1}.get(text[k], 0)
                    k += 1
                args.append(text[start : k - 1])
            elif k < len(text):
                args.append(text[k])  # \frac12 style: one character
                k += 1
        if len(args) < arity:
            out.append(text[j:])
            return "".join(out)
        out.append(build(*args))
        i = k


def normalize(answer: str) -> str:
    """LaTeX-ish answer text to something sympy's parser reads."""
    s = answer.strip().strip("$").strip().replace("\\$", "")
    s = re.sub(r"^[a-zA-Z]\s*\\in\s*", "", s)  # "x \in \{1, 2\}" -> the set
    s = re.sub(r"\\text\s*\{([^{}]*)\}", r" \1 ", s)
    s = re.sub(r"\\(?:left|right|displaystyle|!|,|;|:|quad|qquad)", " ", s)
    s = s.replace("\\%", "/100").replace("%", "/100")
    s = re.sub(r"\^\s*\{\\circ\}|\^\\circ|°", "", s)
    for frac in ("\\dfrac", "\\tfrac", "\\frac"):
        s = _replace_braced(s, frac, 2, lambda a, b: f"(({normalize(a)})/({normalize(b)}))")
    s = re.sub(r"\\sqrt\s*\[([^\]]+)\]\s*\{", r"\\nthroot{\1}{", s)
    s = _replace_braced(s, "\\nthroot", 2, lambda n, x: f"root(({normalize(x)}),({normalize(n)}))")
    s = _replace_braced(s, "\\sqrt", 1, lambda x: f"sqrt({normalize(x)})")
    replacements = {
        "\\pi": " pi ",
        "\\infty": " oo ",
        "\\cdot": "*",
        "\\times": "*",
        "\\div": "/",
        "\\le": "<=",
        "\\ge": ">=",
        "\\ln": "log",
        "\\log": "log",
        "\\sin": "sin",
        "\\cos": "cos",
        "\\tan": "tan",
        "\\exp": "exp",
        "\\{": "{",
        "\\}": "}",
        "−": "-",
        "×": "*",
        "·": "*",
        "π": "pi",
        "√": "sqrt",
    }
    for old, new in replacements.items():
        s = s.replace(old, new)
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)  # 1,000 -> 1000
    s = s.replace("{", "(").replace("}", ")").replace("^", "**")
    return re.sub(r"\s+", " ", s).strip().rstrip(".")


def _expr(text: str) -> Any:
    sp = _sympy()
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    transformations = (*standard_transformations, implicit_multiplication_application, convert_xor)
    try:
        value = parse_expr(text, transformations=transformations, evaluate=True)
    except Exception:  # noqa: BLE001 - sympy's parser raises a zoo of types (SyntaxError, TokenError, TypeError, ...) on odd input
        return None
    return value if isinstance(value, sp.Basic) else None


# ---------------------------------------------------------------- computing answers


@dataclass(frozen=True)
class Computed:
    """An answer sympy found on its own, and what it computed."""

    value: Any
    what: str

    def show(self) -> str:
        sp = _sympy()
        if isinstance(self.value, sp.FiniteSet):
            return "{" + ", ".join(str(v) for v in sorted(self.value, key=sp.default_sort_key)) + "}"
        return str(self.value)

    def latex(self) -> str:
        """The value as LaTeX, as a reference answer for `answers`."""
        return str(_sympy().latex(self.value))


_MATH = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)", re.S)
_EVAL_QUESTION = re.compile(
    r"^\s*(?:what is|what's|compute|evaluate|calculate|simplify|find the value "
    r"of|find)\s*:?\s*(?P<expr>.+?)\s*[?.]?\s*$",
    re.I | re.S,
)


def compute(problem: str) -> Computed | None:
    """Solve `problem` with sympy alone when it is plainly computational."""
    equation = _find_equation(problem)
    if equation is not None:
        return _about_roots(problem, equation)
    ask = _EVAL_QUESTION.match(problem)
    if ask:
        expr_text = ask.group("expr")
        math = _MATH.search(expr_text)
        if math:
            expr_text = next(g for g in math.groups() if g)
        if re.search(r"[a-zA-Z]{2,}", normalize(expr_text).replace("sqrt", "").replace("pi", "").replace("root", "")):
            return None  # words left: not a bare expression
        value = _expr(normalize(expr_text))
        sp = _sympy()
        if value is not None and not value.free_symbols and value.is_number:
            return Computed(
                sp.nsimplify(value) if value.is_Float else sp.simplify(value), f"the value of {normalize(expr_text)}"
            )
    return None


def _find_equation(problem: str) -> Any:
    sp = _sympy()
    candidates = [next(g for g in m.groups() if g) for m in _MATH.finditer(problem)]
    candidates += _plain_equations(problem)
    for text in candidates:
        if text.count("=") != 1:
            continue
        left, right = (normalize(side) for side in text.split("="))
        lhs, rhs = _expr(left), _expr(right)
        if lhs is None or rhs is None:
            continue
        symbols = (lhs - rhs).free_symbols
        if len(symbols) == 1 and (lhs - rhs).is_polynomial(*symbols):
            return sp.Eq(lhs, rhs)
    return None


def _mathy(token: str) -> bool:
    """A token that belongs to a formula: has a digit or operator, or is one letter."""
    return bool(re.search(r"[0-9+\-*/^()=]", token)) or bool(re.fullmatch(r"[a-zA-Z]", token))


def _plain_equations(problem: str) -> list[str]:
    """Equations written without $...$: the formula-looking tokens around each `=`."""
    found = []
    for m in re.finditer(r"(?<![<>!=])=(?!=)", problem):
        left = problem[: m.start()].split()
        right = re.split(r"\s+", problem[m.end() :].strip())
        lhs: list[str] = []
        for token in reversed(left):
            if not _mathy(token):
                break
            lhs.insert(0, token)
        rhs: list[str] = []
        for token in right:
            token = token.rstrip("?.,;:")
            if not token or not _mathy(token):
                break
            rhs.append(token)
        if lhs and rhs:
            found.append(" ".join(lhs) + " = " + " ".join(rhs))
    return found


def _about_roots(problem: str, equation: Any) -> Computed | None:
    sp = _sympy()
    (x,) = equation.free_symbols
    poly = sp.Poly(equation.lhs - equation.rhs, x)
    if poly.degree() < 1:
        return None
    roots = sp.roots(poly, multiple=True)
    if len(roots) != poly.degree():  # not all roots in closed form
        return None
    distinct = list(dict.fromkeys(sp.nsimplify(r) for r in roots))
    real = [r for r in distinct if r.is_real]
    shown = f"{sp.sstr(equation.lhs)} = {sp.sstr(equation.rhs)}"
    lower = problem.lower()
    if "sum" in lower:
        return Computed(sp.simplify(sum(roots)), f"the sum of the roots (with multiplicity) of {shown}")
    if "product" in lower:
        return Computed(sp.simplify(sp.prod(roots)), f"the product of the roots (with multiplicity) of {shown}")
    if re.search(r"how many|number of", lower):
        return Computed(
            sp.Integer(len(real if "real" in lower else distinct)),
            f"the number of distinct {'real ' if 'real' in lower else ''}roots of {shown}",
        )
    if re.search(r"larg|great|max", lower) and real:
        return Computed(max(real), f"the largest real root of {shown}")
    if re.search(r"small|least|min", lower) and real:
        return Computed(min(real), f"the smallest real root of {shown}")
    if re.search(r"positive", lower):
        positive = [r for r in real if r.is_positive]
        if len(positive) == 1:
            return Computed(positive[0], f"the positive root of {shown}")
        return None
    if re.search(rf"(?:what is|what's|find|value of|solve for|compute)\s+\$?{x}\b", lower):
        values = real or distinct
        return Computed(values[0] if len(values) == 1 else sp.FiniteSet(*values), f"{x} in {shown}")
    if re.search(r"solve|root|solution|zero", lower):
        values = real if "real" in lower else distinct
        return Computed(sp.FiniteSet(*values), f"the {'real ' if 'real' in lower else ''}solutions of {shown}")
    return None
