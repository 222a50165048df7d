"""``python -m mlops`` = the ``mlops`` command."""
from mlops.cli import main

if __name__ == "__main__":
    main()
