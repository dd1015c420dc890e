# Copy to instance/config.py and edit. Environment variables override these.
# SECRET_KEY = "..."            # generated into instance/secret_key when unset
# DATABASE_URL = "postgresql+psycopg://creditline@127.0.0.1:5432/creditline"
# SQLITE_SYNCHRONOUS = "FULL"   # FULL (default), NORMAL, EXTRA
# STRIPE_SECRET_KEY = "sk_live_..."
# STRIPE_WEBHOOK_SECRET = "whsec_..."
# RATELIMIT_STORAGE_URI = "redis://127.0.0.1:6379/0"   # several servers
# PREFERRED_URL_SCHEME = "https"   # makes cookies Secure
# TRUSTED_PROXIES = 1              # behind one reverse proxy
# MAIL_URL = "smtp://user:password@smtp.example.com:587"   # or smtps://…:465
# MAIL_FROM = "Creditline <billing@example.com>"
# OUTBOX_WORKER = False            # deliver with `flask --app app deliver-outbox` on a timer instead
