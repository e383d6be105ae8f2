"""The torch side of the policy search: the model, its data, accuracy proxies and real accuracy.

``proxy(policy)``: the policy's recipe applied to a copy of the model, accuracy on a held-out
validation slice of the training split (no fine-tuning), or top-1 agreement with the uncompressed
model when the model has no labelled data. ``final(policy, epochs)``: real test-split accuracy after
Han et al.'s prune -> retrain with the masks held, then quantization (Deep Compression's order).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import torch

from hwsim.compress.policy_stats import measure_layer_stats, prunable_channels
from hwsim.dse.policy import LayerPolicy, LayerStats, Policy, policy_recipe
from hwsim.errors import ConfigError
from hwsim.ir import LayerGraph

_VALIDATION_FRACTION = 0.2
_CALIB_SAMPLES = 64
_PRUNE_METHODS = ("l1_filter_prune", "magnitude_prune", "nm_prune")


@dataclass
class PolicyEvaluator:
    """A model with (optionally) labelled data, its lowered graph, and cached accuracies."""

    name: str
    model: Any
    input_shape: tuple[int, ...]
    graph: LayerGraph
    calib: Any
    data: tuple[Any, Any, Any, Any] | None = None        # (x_train, y_train, x_test, y_test) or None
    seed: int = 0
    trained_accuracy: float | None = None
    _proxy: dict[str, float] = field(default_factory=dict)
    _final: dict[tuple[str, int], float] = field(default_factory=dict)

    @classmethod
    def create(cls, model: str, *, data: Any = None, weights: str | None = None, seed: int = 0) -> "PolicyEvaluator":
        """A torch model (zoo name, ``.pt``, or zoo name + ``weights``) with its labelled data: ``data`` names a
        dataset (``hwsim.datasets``: built-in, image folder, ``module:function``) or is a tuple
        ``(x_train, y_train, x_test, y_test)``; hwsim-trained zoo models (``digits_*``) bring their own."""
        from hwsim.lower import lower
        from hwsim.sources import resolve_with_data

        named = data if data is None or isinstance(data, str) else None
        inputs = resolve_with_data(model, weights=weights, data=named, seed=seed, trained=True)
        if inputs.source.graph_file:
            raise ConfigError(f"autocompress: {model} is a lowered graph; the search needs the torch model "
                              "(a zoo name or a .pt file)")
        net, input_shape = inputs.source.module.eval(), tuple(inputs.input_shape)
        if named is None and data is not None:
            split = tuple(data)
        else:
            split = inputs.data.as_tuple() if inputs.data is not None else None
        if split is not None and tuple(split[0].shape[1:]) != input_shape[1:]:
            raise ConfigError(f"autocompress: data samples have shape {tuple(split[0].shape[1:])}, the model "
                              f"{model} takes {input_shape[1:]}")
        if split is not None:
            calib = split[0][:_CALIB_SAMPLES]
        else:
            from hwsim.fidelity import smooth_noise

            calib = smooth_noise((32, *input_shape[1:]), seed)
        trained_accuracy = None
        if split is not None and inputs.source.trained:
            from hwsim.data import accuracy

            trained_accuracy = accuracy(net, split[2], split[3])
        graph = lower(net, input_shape=input_shape, name=inputs.source.name, example_input=calib[:input_shape[0]])
        return cls(name=inputs.source.name, model=net, input_shape=input_shape, graph=graph, calib=calib, data=split,
                   seed=seed, trained_accuracy=trained_accuracy)

    # ----- facts for the graph editor ------------------------------------------------------------------
    @property
    def channel_prunable(self) -> set[str]:
        return set(prunable_channels(self.model))

    def measure(self, choices: dict[str, dict[str, Any]]) -> LayerStats:
        """``LayerStats`` for every per-layer choice the search can make (``autocompress._choice_lists``)."""
        from hwsim.dse.autospace import parse_prune

        options: dict[str, list[LayerPolicy]] = {}
        act_bits: set[int] = set()
        for group in choices.values():
            for path in group["paths"]:
                options[path] = [LayerPolicy(weight_bits=w, **parse_prune(p))
                                 for w in [None, *group["weight_bits"]] for p in group["prune"] + ["none"]]
            act_bits.update(b for b in group["act_bits"] if b is not None)
        return measure_layer_stats(self.model, options, calib=self.calib, act_bits=act_bits)

    # ----- accuracy ------------------------------------------------------------------------------------
    def _splits(self) -> tuple[Any, Any, Any, Any, Any, Any]:
        x_train, y_train, x_test, y_test = self.data
        n_val = max(1, int(len(x_train) * _VALIDATION_FRACTION))
        return x_train[:-n_val], y_train[:-n_val], x_train[-n_val:], y_train[-n_val:], x_test, y_test

    def _compressed(self, steps: list[dict[str, Any]]) -> Any:
        from hwsim.compress.recipe import apply_recipe

        model = copy.deepcopy(self.model)
        if steps:
            model, _ = apply_recipe(model, {"steps": steps}, calib=self.calib, seed=self.seed,
                                    input_shape=self.input_shape[1:])
        return model.eval()

    def _score(self, model: Any, x: Any, y: Any | None) -> float:
        from hwsim.data import accuracy

        if y is not None:
            return accuracy(model, x, y)
        with torch.no_grad():
            reference = self.model(x).argmax(dim=1)
            return float((model(x).argmax(dim=1) == reference).float().mean())

    def proxy(self, policy: Policy) -> float:
        """Accuracy on the validation slice after the policy, without fine-tuning (cached per policy)."""
        key = json.dumps(policy.to_dict(), sort_keys=True)
        if key not in self._proxy:
            model = self._compressed(policy_recipe(policy)["steps"])
            if self.data is None:
                self._proxy[key] = self._score(model, self.calib, None)
            else:
                _, _, x_val, y_val, _, _ = self._splits()
                self._proxy[key] = self._score(model, x_val, y_val)
        return self._proxy[key]

    def final(self, policy: Policy, epochs: int) -> float:
        """Test-split accuracy after prune -> fine-tune ``epochs`` with masks held -> quantize."""
        return self.final_steps(policy_recipe(policy)["steps"], epochs)

    def final_steps(self, steps: list[dict[str, Any]], epochs: int) -> float:
        """``final`` for any recipe's steps: its pruning steps, fine-tuning, then the rest."""
        key = (json.dumps(steps, sort_keys=True, default=str), int(epochs))
        if key in self._final:
            return self._final[key]
        if self.data is None:
            self._final[key] = self._score(self._compressed(steps), self.calib, None)
            return self._final[key]
        prune = [s for s in steps if s["method"] in _PRUNE_METHODS]
        rest = [s for s in steps if s["method"] not in _PRUNE_METHODS]
        model = self._compressed(prune)
        x_fit, y_fit, _, _, x_test, y_test = self._splits()
        if epochs > 0 and steps:
            from hwsim.data import train_classifier

            masks = {name: (p != 0) for name, p in model.named_parameters() if name.endswith("weight") and p.dim() > 1}
            hold = lambda m: [p.mul_(masks[n].to(p.dtype)) for n, p in m.named_parameters() if n in masks]  # noqa: E731
            train_classifier(model, (x_fit, y_fit, x_test, y_test), epochs=epochs, lr=1e-3, seed=self.seed,
                             after_step=hold)
        if rest:
            from hwsim.compress.recipe import apply_recipe

            model, _ = apply_recipe(model, {"steps": rest}, calib=self.calib, seed=self.seed,
                                    input_shape=self.input_shape[1:])
        self._final[key] = self._score(model.eval(), x_test, y_test)
        return self._final[key]

    def accuracy_kind(self, epochs: int) -> str:
        """What the accuracy numbers are, in words (every output carries it)."""
        if self.data is None:
            return ("top-1 agreement with the uncompressed model (untrained weights) on a calibration batch; "
                    "not accuracy: use a trained model (e.g. digits_cnn) for real accuracy")
        return (f"top-1 accuracy on the {self.name} test split after {epochs} fine-tuning epoch(s) "
                "(search used the no-fine-tuning accuracy on a validation slice of the training split as its proxy)")
