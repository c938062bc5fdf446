"""The core service: auth, users, catalog and orders behind NGINX."""
