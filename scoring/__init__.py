"""Intelligence: engagement and churn scores, analytics and dashboards (phase 8). Not built
yet; the module plan it grows into:

- ``models.py``: current scores (a narrow table rebuilt set-wise) and a daily history.
- ``engagement.py``: the engagement score (recency, frequency, monetary, breadth, depth),
  one set-wise statement per tenant.
- ``churn.py``: churn risk with its reason codes, and the backtest.
- ``nightly.py``: the 02:00 run per tenant, once per day, after the activity recount.
- ``analytics.py``: the reads behind ``/api/v1/analytics/...`` and the dashboards.
- ``tasks.py``, ``admin.py``, ``api/`` and ``management/commands/`` as in every app.
"""
