"""``POST /v1/tools/{name}/invoke``: a small registry of real, deterministic tools.

Every tool is side-effect free and bounded in time and memory:

* ``calculator``: ``{"expression": "2 * (3 + 4) ** 2"}`` -> ``{"value": 98}``. Arithmetic
  only (``+ - * / // % **``, unary ``+ -``, parentheses, int and float literals), evaluated
  by walking Python's ``ast`` (never ``eval``); integers are capped at 4096 bits and
  exponents at 10,000.
* ``token_count``: ``{"text": "..."}`` -> the tokens tollgate-echo counts for it.
* ``utc_now``: ``{}`` -> the request's time in UTC (API Gateway's ``requestTimeEpoch``).

A tool is entitled per tenant by its plan (``Plan.tools``; absent = every tool). Each
invocation writes its own usage event: operation ``tools.invoke``, model ``tool:<name>``.
Arguments that fail a tool's schema are a 400 (nothing recorded); an unknown tool is a 404
and a tool outside the plan a 403 (both recorded as errors; the unknown tool's event names
the model ``unknown``, never the name the caller sent: docs/billing.md, "Statements").
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from functions.api import tokens
from functions.api.caller import Caller
from functions.api.errors import InvalidRequest, ToolFailed, ToolNotAllowed, ToolNotFound
from functions.api.schemas import ToolCall, parse_object
from functions.api.services import Services
from functions.api.usage import UsageRecorder
from functions.pricing.catalogue import UNKNOWN

OPERATION: Final = "tools.invoke"
MAX_EXPRESSION: Final = 256
MAX_INT_BITS: Final = 4096
MAX_EXPONENT: Final = 10_000


# -- calculator --------------------------------------------------------------------------
_BINARY: Final[dict[type[ast.operator], Callable[[Any, Any], Any]]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: Final[dict[type[ast.unaryop], Callable[[Any], Any]]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
Number = int | float


class CalculationError(ValueError):
    """A well-formed expression without a finite result (e.g. division by zero)."""


def parse_expression(text: str) -> ast.expr:
    """The expression's tree if it is plain arithmetic; ValueError otherwise."""
    if len(text) > MAX_EXPRESSION:
        raise ValueError(f"at most {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ValueError("not an arithmetic expression") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Expression | ast.BinOp | ast.UnaryOp):
            continue
        if isinstance(node, ast.operator) and type(node) in _BINARY:
            continue
        if isinstance(node, ast.unaryop) and type(node) in _UNARY:
            continue
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            continue
        raise ValueError("only numbers, + - * / // % ** and parentheses are allowed")
    return tree.body


def _check(value: Any) -> Number:
    if not isinstance(value, int | float):  # e.g. (-8) ** 0.5 is complex
        raise CalculationError("the result is not a real number")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise CalculationError("the result is too large")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculationError("the result is not a finite number")
    return value


def evaluate(node: ast.expr) -> Number:
    if isinstance(node, ast.Constant):
        return _check(node.value)
    if isinstance(node, ast.UnaryOp):
        return _check(_UNARY[type(node.op)](evaluate(node.operand)))
    if isinstance(node, ast.BinOp):
        left, right = evaluate(node.left), evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            if abs(right) > MAX_EXPONENT:
                raise CalculationError("the exponent is too large")
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and right > 0
                and max(left.bit_length(), 1) * right > MAX_INT_BITS * 2
            ):
                raise CalculationError("the result is too large")
        try:
            return _check(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise CalculationError("division by zero") from None
        except OverflowError:
            raise CalculationError("the result is too large") from None
    raise CalculationError("unsupported expression")  # parse_expression prevents this


def calculate(text: str) -> Number:
    return evaluate(parse_expression(text))


# -- the registry ------------------------------------------------------------------------
class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CalculatorArgs(_Args):
    expression: str = Field(min_length=1, max_length=MAX_EXPRESSION)

    @field_validator("expression")
    @classmethod
    def _arithmetic(cls, value: str) -> str:
        parse_expression(value)
        return value


class TokenCountArgs(_Args):
    text: str = Field(max_length=1_000_000)


class NoArgs(_Args):
    pass


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[_Args]
    run: Callable[[Any, Caller], dict[str, Any]]


def _calculator(args: CalculatorArgs, caller: Caller) -> dict[str, Any]:
    try:
        return {"value": calculate(args.expression)}
    except CalculationError as exc:
        raise ToolFailed(f"calculator: {exc}.") from None


def _token_count(args: TokenCountArgs, caller: Caller) -> dict[str, Any]:
    return {"tokens": tokens.count(args.text), "method": "utf8_bytes_div_4_ceil"}


def _utc_now(args: NoArgs, caller: Caller) -> dict[str, Any]:
    at = datetime.fromtimestamp(caller.request_time_ms / 1000, UTC)
    return {
        "iso": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "epoch_ms": caller.request_time_ms,
    }


TOOLS: Final[dict[str, Tool]] = {
    t.name: t
    for t in (
        Tool("calculator", "Exact arithmetic on int and float literals.", CalculatorArgs,
             _calculator),
        Tool("token_count", "Tokens of a text as tollgate-echo counts them.", TokenCountArgs,
             _token_count),
        Tool("utc_now", "The request's time in UTC.", NoArgs, _utc_now),
    )
}  # fmt: skip


def body_shape(tool: Tool) -> str:
    """The body ``tool`` expects, e.g. ``{"arguments": {"expression": "..."}}``."""
    fields = ", ".join(
        f'"{name}": ' + ('"..."' if info.annotation is str else "...")
        for name, info in tool.args.model_fields.items()
    )
    return '{"arguments": {' + fields + "}}"


def parse_arguments(tool: Tool, call: ToolCall) -> _Args:
    """The tool's arguments from ``call``; a 400 that names ``arguments`` and the expected
    body otherwise (the usual mistake: the tool's fields at the top level of the body)."""
    try:
        return parse_object(tool.args, call.args)
    except InvalidRequest as exc:
        expected = f"POST /v1/tools/{tool.name}/invoke expects {body_shape(tool)}"
        if "arguments" not in call.model_fields_set:
            raise InvalidRequest(
                f"Missing 'arguments': {expected} (the tool's fields go inside 'arguments').",
                param="arguments",
            ) from None
        param = f"arguments.{exc.param}" if exc.param else "arguments"
        message = exc.message.replace(f"'{exc.param}'", f"'{param}'") if exc.param else exc.message
        raise InvalidRequest(f"{message} {expected}.", param=param) from None


def invoke(services: Services, caller: Caller, name: str, call: ToolCall) -> dict[str, Any]:
    tool = TOOLS.get(name)
    args = parse_arguments(tool, call) if tool else None  # 400: nothing recorded
    # Only a tool that exists names the event's model; any other name a caller sends is
    # recorded as ``unknown`` (invoice integrity, functions/usage/logic.py).
    model = f"tool:{name}" if tool is not None else UNKNOWN
    with UsageRecorder(services.store, caller, OPERATION, model=model) as usage:
        if tool is None:
            raise ToolNotFound(f"No tool named '{name[:64]}'.")
        plan = services.plans.get(caller.plan)
        usage.plan = plan.name
        if not plan.allows_tool(tool.name):
            raise ToolNotAllowed(f"The tenant's plan does not include the tool '{tool.name}'.")
        result = tool.run(args, caller)
        usage.ok()
    return {"object": "tool.result", "tool": tool.name, "result": result}
