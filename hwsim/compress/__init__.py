"""Compression: recipes of registered methods (pruning, quantization, low-rank, distillation).

``apply_recipe(model, recipe)`` runs a recipe; ``methods()`` lists what a recipe step may name.
Importing this package does not import torch; applying a recipe does.
"""

from __future__ import annotations

from hwsim.compress.recipe import CompressionReport, Recipe, Step, apply_recipe, load_recipe, shipped_recipes
from hwsim.compress.registry import LayerChange, Method, StepReport, annotate, get_method, methods, register_method

__all__ = ["CompressionReport", "LayerChange", "Method", "Recipe", "Step", "StepReport", "annotate", "apply_recipe",
           "get_method", "load_recipe", "methods", "register_method", "shipped_recipes"]
