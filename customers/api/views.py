"""Views of the customers API, built on crm.api.views.TenantScopedAPIMixin."""
