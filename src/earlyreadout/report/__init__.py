"""The HTML report: page, tables and plots."""
