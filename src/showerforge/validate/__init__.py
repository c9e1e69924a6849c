"""showerforge.validate."""
