"""Few-shot text classification side by side with SetFit 1.2 (issue 30): see __main__.py."""
