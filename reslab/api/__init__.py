"""The Python API (the top layer, beside the CLI): `reslab.train`, `reslab.sweep`, `reslab.lab` call what the
commands call; `reslab.load_run`, `load_sweep`, `load_lab` read folders into objects whose tables are pandas
DataFrames (`tables`, pandas being the optional `reslab[notebook]` extra) and whose plots return matplotlib Figures.
`reslab/__init__` exposes these names lazily, so `import reslab` stays light (no torch, no pandas).
"""
