"""showerforge.models."""
