"""Helpers of the browser tests."""

from __future__ import annotations


def login(page, base_url: str, username: str, password: str) -> None:
    """Signs in on the staff console's login form and waits for the page it lands on."""
    page.goto(f"{base_url}/admin/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_load_state("networkidle")
