"""Writers (and the .vqm reader). Each reads the IR in vqexport/ir.py; none re-derives it."""
