"""Staff console screens of the social app."""
