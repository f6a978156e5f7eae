"""Analyses of models and runs (layer 5): each instrument is a measure module (`gradflow`, `lesion`, `shatter`,
`landscape`, `init`), a pure summary module (`<name>_summary`) and a registration (`registry`, `instruments`);
`run_instrument` resolves, measures, and writes its folder through `writer`."""
