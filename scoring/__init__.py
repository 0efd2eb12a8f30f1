"""Engagement and churn scoring, batch jobs, analytics endpoints and dashboards."""
