"""Figures and reports built from run folders on disk."""
