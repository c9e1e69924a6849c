"""showerforge.evaluate."""
