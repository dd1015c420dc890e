"""Flask extensions, created once and bound to each app in ``create_app``."""

from flask import current_app
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from core.analytics import ClosedDays
from core.db import Database
from core.dify import DifyChat
from core.gateway.service import Gateway
from core.integration_keys import AuthenticatedKey
from core.passwords import Passwords
from core.pricebook import PriceBookCache
from core.recent_keys import RecentKeys
from core.secret_box import SecretBox
from core.signature_failures import Recorder
from core.stripe_gateway import StripeGateway
from core.usage_one_statement import UserWallets
from core.user_keys import KeyHolder

csrf = CSRFProtect()
login_manager = LoginManager()


def database() -> Database:
    """This app's Database (engine + session factories)."""
    return current_app.extensions["creditline.db"]


def closed_days() -> ClosedDays:
    """This app's cache of analytics totals for days that can no longer change."""
    return current_app.extensions["creditline.closed_days"]


def recent_keys() -> RecentKeys[AuthenticatedKey]:
    """Integration keys this process has authenticated (``core.recent_keys``)."""
    return current_app.extensions["creditline.recent_keys"]


def recent_holders() -> RecentKeys[KeyHolder]:
    """Users' keys this process has authenticated for ``/v1`` (``core.recent_keys``)."""
    return current_app.extensions["creditline.recent_holders"]


def user_wallets() -> UserWallets:
    """Users and wallets the usage API has read (``core.usage_one_statement``)."""
    return current_app.extensions["creditline.user_wallets"]


def passwords() -> Passwords:
    return current_app.extensions["creditline.passwords"]


def prices() -> PriceBookCache:
    return current_app.extensions["creditline.prices"]


def signature_failures() -> Recorder:
    """This app's count of Stripe webhooks refused for their signature."""
    return current_app.extensions["creditline.signature_failures"]


def stripe_gateway() -> StripeGateway:
    return current_app.extensions["creditline.stripe"]


def gateway() -> Gateway:
    """This app's metering gateway (``core.gateway.service``)."""
    return current_app.extensions["creditline.gateway"]


def dify_chat() -> DifyChat:
    """This app's chat with Dify apps (``core.dify``)."""
    return current_app.extensions["creditline.dify_chat"]


def secret_box() -> SecretBox:
    """This app's key for secrets at rest (``core.secret_box``)."""
    return current_app.extensions["creditline.secret_box"]
