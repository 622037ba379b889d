"""`hwm` subcommands that train and evaluate; each module has `register(groups)`."""
