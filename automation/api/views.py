"""Views of the automation API, built on crm.api.views.TenantScopedAPIMixin."""
