from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField, ValidationError
from wtforms.validators import DataRequired, Length

from core.pricing import AmountError, parse_rate


class ApiKeyForm(FlaskForm):
    name = StringField(
        "Name", validators=[DataRequired(), Length(max=100)], description="e.g. dify-production"
    )


class ConfirmForm(FlaskForm):
    """A button that changes state: only the CSRF token."""


class RateForm(FlaskForm):
    credits_per_usd = StringField(
        "New rate (credits per USD)", validators=[DataRequired(), Length(max=20)]
    )
    reason = TextAreaField("Reason", validators=[DataRequired(), Length(max=2000)])

    def validate_credits_per_usd(self, field: StringField) -> None:
        try:
            self.rate_value = parse_rate(field.data or "")
        except AmountError as exc:
            raise ValidationError(str(exc)) from None

    def validate_reason(self, field: TextAreaField) -> None:
        if not (field.data or "").strip():
            raise ValidationError("A reason is required.")
