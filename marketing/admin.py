"""Staff console screens of the marketing app."""
