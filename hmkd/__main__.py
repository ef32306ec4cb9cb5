"""Usage: python -m hmkd <command> ... (same as the ``hmkd`` console script)."""
from hmkd.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
