"""The `cmar` command line and the end-to-end pipeline it runs."""
