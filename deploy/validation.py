"""Files deploy reads back (sidecars, reports) checked against the dataclasses that declare them, before any value
is used: a wrong type, a missing field or a broken invariant is one error naming the file and the field."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, TypeVar

from deploy.errors import ArtifactError

if TYPE_CHECKING:
    from pydantic import TypeAdapter

T = TypeVar("T")
_SHOWN_ERRORS = 3


@functools.cache
def _adapter(kind: type[Any]) -> TypeAdapter[Any]:
    from pydantic import TypeAdapter  # ~0.1 s to import; `deploy list` and `--help` never pay it

    return TypeAdapter(kind)


def parse(kind: type[T], data: Any, *, what: str, hint: str) -> T:
    """`data` (decoded JSON) as a `kind` dataclass, type-checked field by field and with `kind`'s own invariants
    (`__post_init__`) run; otherwise an ArtifactError naming `what` and the first fields at fault."""
    from pydantic import ValidationError

    try:
        value: T = _adapter(kind).validate_python(data)  # type: ignore[arg-type]  # classes are hashable
    except ValidationError as exc:
        raise ArtifactError(f"{what} is not valid: {describe(exc)}", hint=hint) from exc
    return value


def describe(exc: Any) -> str:
    """A pydantic ValidationError as `field.path: reason; ...` (at most three, then a count)."""
    errors = exc.errors(include_url=False)
    parts = []
    for error in errors[:_SHOWN_ERRORS]:
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    if len(errors) > _SHOWN_ERRORS:
        parts.append(f"and {len(errors) - _SHOWN_ERRORS} more")
    return "; ".join(parts)
