"""`reslab lab`: the whole lab in one command: every experiment of the notebook and its fair, multi-seed
versions (`profiles`, `stages`), resumable (`folder`), then one report whose conclusions are computed from the
measured numbers (`conclude`, `notebook`, `explain`, `report`)."""

from reslab.lab.run import run_lab

__all__ = ["run_lab"]
