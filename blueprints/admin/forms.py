from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, TextAreaField, ValidationError
from wtforms.validators import DataRequired, Length

from core.pricing import AmountError, parse_rate, parse_usd_per_m


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


class ModelForm(FlaskForm):
    name = StringField(
        "Model id (as integrations send it)", validators=[DataRequired(), Length(max=100)]
    )
    display_name = StringField("Display name", validators=[Length(max=200)])
    input_usd = StringField("Input, USD per 1M tokens", validators=[DataRequired(), Length(max=30)])
    output_usd = StringField(
        "Output, USD per 1M tokens", validators=[DataRequired(), Length(max=30)]
    )
    enabled = BooleanField("Enabled", default=True)
    reason = TextAreaField("Reason", validators=[DataRequired(), Length(max=2000)])

    def validate_input_usd(self, field: StringField) -> None:
        self.input_uusd = _price(field)

    def validate_output_usd(self, field: StringField) -> None:
        self.output_uusd = _price(field)


def _price(field: StringField) -> int:
    try:
        return parse_usd_per_m(field.data or "")
    except AmountError as exc:
        raise ValidationError(str(exc)) from None
