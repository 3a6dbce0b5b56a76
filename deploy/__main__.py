"""`python -m deploy` runs the CLI, like the `deploy` console script."""

from deploy.cli import main

main()
