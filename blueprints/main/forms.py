from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, ValidationError
from wtforms.validators import DataRequired, EqualTo, Length

from core.accounts import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from core.pricing import AmountError, parse_credits


class ThresholdForm(FlaskForm):
    threshold = StringField(
        "Alert me when my balance is below (credits)",
        description="Leave empty to use the default.",
        validators=[Length(max=40)],
    )

    def validate_threshold(self, field: StringField) -> None:
        if field.data and field.data.strip():
            try:
                self.threshold_ucr = parse_credits(field.data)
            except AmountError as exc:
                raise ValidationError(str(exc)) from None
        else:
            self.threshold_ucr = None


class PasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired()])
    new = PasswordField(
        "New password",
        validators=[
            DataRequired(),
            Length(
                min=MIN_PASSWORD_LENGTH, message=f"Use at least {MIN_PASSWORD_LENGTH} characters."
            ),
            Length(
                max=MAX_PASSWORD_LENGTH, message=f"Use at most {MAX_PASSWORD_LENGTH} characters."
            ),
        ],
    )
    confirm = PasswordField(
        "Repeat new password", validators=[DataRequired(), EqualTo("new", "Passwords differ.")]
    )
