"""Staff console screens of the scoring app."""
