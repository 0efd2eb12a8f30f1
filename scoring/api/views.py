"""Views of the scoring API, built on crm.api.views.TenantScopedAPIMixin."""
