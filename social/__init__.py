"""Social media: connections, posts, publishing and competition promotion (phase 6). Not
built yet; the module plan it grows into:

- ``models.py``: Connection (platform, account, encrypted tokens, status), Post and one
  Publication per target connection, Promotion (one per tenant, source type and source id).
- ``connections.py``: OAuth with authlib (state bound to the session, PKCE), Facebook Page
  and Instagram professional accounts, X; token refresh under a row lock.
- ``posts.py``: post services, per-platform validation, scheduling (due times in the
  database, swept every minute).
- ``publishers.py``: one publisher per platform behind a backend chosen by settings (a
  ``local`` backend for ``make run``), never publishing twice.
- ``promotion.py``: competition auto-promotion from TeeTime events (campaign, posts and
  reminders), registered as an event subscriber in ``apps.py``.
- ``tasks.py``, ``admin.py``, ``api/`` as in every app (docs/architecture.md).
"""
