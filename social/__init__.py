"""Social media: connections, posts, publishing and competition promotion (phase 6).

- ``models.py``: Connection (platform, account, encrypted tokens, status), OAuthState and
  PageChoice (connect flows in progress), Post and one Publication per target connection,
  ClubSocialSettings, Promotion (one per tenant, source type and source id) and its
  reminders.
- ``connections.py``: OAuth with authlib (signed single-use state bound to the session,
  PKCE), Facebook Pages and Instagram professional accounts through their Page, X; token
  refresh under a row lock.
- ``posts.py``: post services, per-platform validation, scheduling (due times in the
  database, swept every minute).
- ``publishers.py``: one publisher per platform behind ``SOCIAL_BACKEND`` (``local`` for
  ``make run``), never publishing twice.
- ``promotion.py``: competition promotion from TeeTime events (campaign, posts and
  reminders), registered as an event subscriber in ``apps.py``.
- ``tasks.py``, ``admin.py``, ``api/`` as in every app (docs/architecture.md); docs/social.md.
"""
