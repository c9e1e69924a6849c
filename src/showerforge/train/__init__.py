"""showerforge.train."""
