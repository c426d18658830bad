"""The HTTP service: a FastAPI app over a ``Recommender`` (routes, auth, limits, metrics).

``create_app(settings, engine)`` builds an app; ``gunicorn_app()`` is the factory that
Gunicorn imports. See docs/serving.md.
"""

from recloop.serving.app import create_app, gunicorn_app

__all__ = ["create_app", "gunicorn_app"]
