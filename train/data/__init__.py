"""The `hwm data` commands; the data formats themselves live in `models.data`."""
