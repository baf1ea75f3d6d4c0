"""The functional core: pure, deterministic, no I/O. Program + member state + event -> decision."""
