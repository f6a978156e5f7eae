"""Typed, frozen run configuration (`schema`) and where it is read from: presets, YAML, overrides (`sources`)."""

from reslab.config.convert import changed_keys, flatten, from_dict, to_dict
from reslab.config.schema import (DataConfig, DistillConfig, GradflowConfig, ModelConfig, OptimConfig, RunConfig,
                                  TrackConfig, TrainConfig)
from reslab.config.sources import (apply_overrides, dump_yaml, load_source, parse_override, preset_names, resolve,
                                   set_key)

__all__ = ["DataConfig", "DistillConfig", "GradflowConfig", "ModelConfig", "OptimConfig", "RunConfig", "TrackConfig", "TrainConfig",
           "from_dict", "to_dict", "changed_keys", "flatten", "apply_overrides", "dump_yaml", "load_source", "parse_override", "preset_names",
           "resolve", "set_key"]
