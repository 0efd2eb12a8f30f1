"""Intelligence: engagement and churn scores, the nightly run, the backtest, analytics and
dashboards (phase 8). See docs/scoring.md.

Modules: ``models.py``; ``engagement.py`` (the §10.1 score) <- ``churn.py`` (risk, reasons)
<- ``backtest.py``; ``analytics.py`` (daily aggregates, API reads); ``nightly.py`` (the 02:00
run, uses engagement, churn, analytics); ``demo.py`` (synthetic history); ``tasks.py``,
``admin.py``, ``api/`` and ``management/commands/`` as in every app.
"""
