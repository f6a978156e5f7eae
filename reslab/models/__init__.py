"""Models: one registry, `build_model(name, input_shape=..., num_classes=..., **kw)`.

Importing the submodules registers their builders; that is this package's only import-time effect.
"""

from .registry import Classifier, build_model, count_params, init_of, model_args, model_names, register_model
from . import cifar_resnet, convnet, mlp, seed, torchvision_resnet  # noqa: F401  (registration)

__all__ = ["Classifier", "build_model", "count_params", "init_of", "model_args", "model_names", "register_model"]
