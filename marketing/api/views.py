"""Views of the marketing API, built on crm.api.views.TenantScopedAPIMixin."""
