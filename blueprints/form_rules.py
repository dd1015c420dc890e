"""WTForms rules that apply a core rule to a field, so forms and the CLI agree.

``parsed_amount(parse)`` parses a field's text with one of core.pricing's
parsers: the value is kept on the field as ``field.parsed`` (``None`` when the
field is blank), and an ``AmountError`` becomes the field's error, with the
parser's own message. ``ReasonRule`` applies ``core.audit.clean_reason``
(required, at most ``MAX_REASON_LENGTH`` characters after stripping) and
renders as the ``required`` and ``maxlength`` attributes. The domain
functions apply the same rules again; the forms apply them first so the
message lands on the field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from wtforms import Field, Form, ValidationError

from core import errors
from core.audit import MAX_REASON_LENGTH, clean_reason

Validator = Callable[[Form, Field], None]


def parsed_amount(parse: Callable[[str], int], *, thousands: bool = False) -> Validator:
    """A validator that sets ``field.parsed`` from ``parse(text)``.

    ``thousands``: commas are digit grouping ("1,000") and are removed first.
    A blank field parses to ``None``; required fields put DataRequired first.
    """

    def validate(form: Form, field: Field) -> None:
        text = field.data or ""
        field.parsed = None
        if not text.strip():
            return
        try:
            field.parsed = parse(text.replace(",", "") if thousands else text)
        except errors.AmountError as exc:
            raise ValidationError(exc.message) from None

    return validate


class ReasonRule:
    """Validator for an admin's reason: core.audit.clean_reason's rule."""

    field_flags: ClassVar[dict[str, object]] = {"required": True, "maxlength": MAX_REASON_LENGTH}

    def __call__(self, form: Form, field: Field) -> None:
        try:
            clean_reason(field.data)
        except errors.ValidationError as exc:
            raise ValidationError(exc.message) from None
