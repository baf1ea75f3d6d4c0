"""Storage: tables, the database handle with its transaction rules, and migrations."""
