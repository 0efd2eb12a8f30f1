"""Staff console screens of the backfill app."""
