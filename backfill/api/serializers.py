"""Input and output serializers of the backfill API."""
