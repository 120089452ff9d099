"""The catalogue: its Parquet format, validation, and the ways to make one."""
