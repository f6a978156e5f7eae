"""The sweep's intervals: `reslab.stats` (one layer down, so instruments use the same ones), under their old name."""

from reslab.stats import CONFIDENCE, t_interval, welch_interval

__all__ = ["CONFIDENCE", "t_interval", "welch_interval"]
