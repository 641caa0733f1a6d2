"""Sub-commands of the nrg command line, one light module each."""
