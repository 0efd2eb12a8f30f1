"""Segments, campaigns, A/B variants, templates, messaging backends, sends, interactions, webhooks
and suppression.
"""
