"""Views of the backfill API, built on crm.api.views.TenantScopedAPIMixin."""
