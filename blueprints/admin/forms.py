from flask_wtf import FlaskForm
from wtforms import BooleanField, Field, SelectField, StringField, TextAreaField, ValidationError
from wtforms.validators import DataRequired, Length

from core.bounds import MAX_TOKENS_PER_EVENT, MAX_TOPUP_OPTION_USD
from core.enums import Role
from core.pricing import AmountError, parse_credits, parse_rate, parse_usd_per_m


def field_named(form: FlaskForm, name: object, default: Field) -> Field:
    """The field a domain error names in its ``field`` detail, else ``default``."""
    return form._fields.get(str(name), default)


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


class SettingsForm(FlaskForm):
    topup_options = StringField(
        "Top-up options (whole USD, comma-separated)", validators=[DataRequired(), Length(max=200)]
    )
    max_tokens = StringField("Max tokens per event", validators=[DataRequired(), Length(max=20)])
    max_credits = StringField("Max credits per event", validators=[DataRequired(), Length(max=30)])
    overdraft = StringField(
        "Overdraft limit (credits)", validators=[DataRequired(), Length(max=30)]
    )
    threshold = StringField(
        "Default low-balance alert (credits)", validators=[DataRequired(), Length(max=30)]
    )
    reason = TextAreaField("Reason", validators=[DataRequired(), Length(max=2000)])

    def validate_topup_options(self, field: StringField) -> None:
        parts = [p.strip() for p in (field.data or "").split(",") if p.strip()]
        # isascii: str.isdigit() is also true for "²" and other digits int() refuses.
        if not parts or not all(p.isascii() and p.isdigit() and len(p) <= 5 for p in parts):
            raise ValidationError("List whole dollar amounts, e.g. 5, 10, 25.")
        values = tuple(int(p) for p in parts)
        if not all(1 <= v <= MAX_TOPUP_OPTION_USD for v in values):
            raise ValidationError(
                f"Top-up options are whole dollar amounts from 1 to {MAX_TOPUP_OPTION_USD:,}."
            )
        self.values["topup_options_usd"] = values

    def validate_max_tokens(self, field: StringField) -> None:
        raw = (field.data or "").strip().replace(",", "")
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_TOKENS_PER_EVENT:
            raise ValidationError(
                f"A whole number of tokens, at least 1 and at most {MAX_TOKENS_PER_EVENT:,}."
            )
        self.values["max_tokens_per_event"] = int(raw)

    def validate_max_credits(self, field: StringField) -> None:
        self.values["max_credits_per_event_ucr"] = _credits(field)

    def validate_overdraft(self, field: StringField) -> None:
        self.values["overdraft_limit_ucr"] = _credits(field)

    def validate_threshold(self, field: StringField) -> None:
        self.values["default_low_balance_threshold_ucr"] = _credits(field)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.values: dict[str, object] = {}


def _credits(field: StringField) -> int:
    try:
        return parse_credits((field.data or "").replace(",", ""))
    except AmountError as exc:
        raise ValidationError(str(exc)) from None


class AdjustForm(FlaskForm):
    amount = StringField("Credits (negative removes)", validators=[DataRequired(), Length(max=30)])
    reason = TextAreaField("Reason", validators=[DataRequired(), Length(max=2000)])

    def validate_amount(self, field: StringField) -> None:
        try:
            self.amount_ucr = parse_credits(
                (field.data or "").replace(",", ""), allow_negative=True
            )
        except AmountError as exc:
            raise ValidationError(str(exc)) from None


class AccessForm(FlaskForm):
    role = SelectField("Role", choices=[role.value for role in Role])
    disabled = BooleanField("Disabled (cannot sign in; usage refused)")
    reason = TextAreaField("Reason", validators=[DataRequired(), Length(max=2000)])


class ReasonForm(FlaskForm):
    reason = TextAreaField("Reason", validators=[DataRequired(), Length(max=2000)])
