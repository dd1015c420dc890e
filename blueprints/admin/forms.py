from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length


class ApiKeyForm(FlaskForm):
    name = StringField(
        "Name", validators=[DataRequired(), Length(max=100)], description="e.g. dify-production"
    )


class ConfirmForm(FlaskForm):
    """A button that changes state: only the CSRF token."""
