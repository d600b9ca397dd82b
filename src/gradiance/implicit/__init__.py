"""Implicit surfaces: signed distance and occupancy fields, ray-surface search with implicit gradients,
shading, soft silhouettes."""

from .render import ImplicitRenderOutput, ImplicitRenderSettings, render_implicit, soft_silhouette
from .sdf import Box, Capsule, Difference, Intersection, Plane, SmoothUnion, Sphere, Torus, Transformed, Union
from .tracing import (
    Hits,
    attach_hit_gradients,
    field_gradient,
    occupancy_as_field,
    secant_search,
    sphere_trace,
)

__all__ = [
    "Box",
    "Capsule",
    "Difference",
    "Hits",
    "ImplicitRenderOutput",
    "ImplicitRenderSettings",
    "Intersection",
    "Plane",
    "SmoothUnion",
    "Sphere",
    "Torus",
    "Transformed",
    "Union",
    "attach_hit_gradients",
    "field_gradient",
    "occupancy_as_field",
    "render_implicit",
    "secant_search",
    "soft_silhouette",
    "sphere_trace",
]
