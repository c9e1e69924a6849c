"""``python -m showerforge``: the same command line as ``showerforge``."""

from showerforge.cli import main

if __name__ == "__main__":
    main()
