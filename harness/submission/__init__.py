"""What a submission needs: scoring, compliance, packaging and checking. See DESIGN.md."""
