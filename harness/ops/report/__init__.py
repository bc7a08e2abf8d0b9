"""`python -m harness report`: one self-contained HTML file (and a markdown summary) from run directories."""
