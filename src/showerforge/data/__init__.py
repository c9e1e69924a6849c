"""showerforge.data."""
