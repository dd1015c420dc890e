from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, ValidationError
from wtforms.validators import DataRequired, Length

from blueprints.auth.forms import new_password_field, repeat_field
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
    new = new_password_field("New password")
    confirm = repeat_field("Repeat new password", "new")
