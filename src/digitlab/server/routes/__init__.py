"""The app's routes, one router per area; each takes the shared State as a dependency."""

from . import activations, datasets, drawings, meta, models, runs

ROUTERS = [meta.router, datasets.router, runs.router, models.router, activations.router, drawings.router]
