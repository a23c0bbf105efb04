"""notifactor: a multi-tenant, real-time notification platform on Trio."""

__version__ = "0.1.0"
