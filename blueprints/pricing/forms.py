from flask_wtf import FlaskForm
from wtforms import IntegerField
from wtforms.validators import InputRequired


class CheckoutForm(FlaskForm):
    # Whole dollars; which amounts are allowed is the domain's decision.
    amount_usd = IntegerField("Amount", validators=[InputRequired()])
