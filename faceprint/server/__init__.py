"""faceprint as a service: ``faceprint serve`` runs ``create_app`` on uvicorn (``pip install faceprint[server]``)."""

from .app import Settings, create_app

__all__ = ["Settings", "create_app"]
