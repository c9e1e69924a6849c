"""Version-by-version validation: suites of analyses and gates, histories, dashboards.

``showerforge validate run --suite SUITE.toml --candidate ... --label v3`` books the suite's
histograms for the candidate and its reference, compares them (chi2/ndf with mcplots bands, KS
p-values), runs the evaluation metrics (classifier AUC, FPD/KPD, W1 for jets), applies the gates,
writes an HTML page and ROOT/YODA histogram files, and records everything in a history database
(SQLite by default, any SQLAlchemy URL).
"""

__all__: list[str] = []
