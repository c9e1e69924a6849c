"""showerforge.bench."""
