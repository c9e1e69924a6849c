"""showerforge.generate."""
