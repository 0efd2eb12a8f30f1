"""Input and output serializers of the customers API."""
