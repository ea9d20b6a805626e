"""fgbg-depth generation library: one module per responsibility (see README.md, "Design")."""
