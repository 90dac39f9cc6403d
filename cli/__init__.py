"""batuta's command-line front end (typer). Heavy modules are imported lazily inside commands."""
