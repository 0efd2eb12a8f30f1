"""Views of the social API, built on crm.api.views.TenantScopedAPIMixin."""
