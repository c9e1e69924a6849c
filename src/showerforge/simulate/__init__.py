"""showerforge.simulate."""
