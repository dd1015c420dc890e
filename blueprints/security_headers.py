"""Security headers on every response.

The CSP allows only this site's own scripts and styles: Creditline has no
inline script or style, and htmx runs without eval because no hx-trigger
filters or hx-on attributes are used (see static/app.js). Forms may post here
and redirect to Stripe Checkout, whose origin is configurable for tests.
"""

from __future__ import annotations

from flask import Flask, Response


def init_app(app: Flask) -> None:
    checkout = app.config["STRIPE_CHECKOUT_ORIGIN"]
    policy = "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "frame-ancestors 'none'",
            f"form-action 'self' {checkout}",
        )
    )

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", policy)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault(
            "Permissions-Policy", "camera=(), microphone=(), geolocation=()"
        )
        return response
