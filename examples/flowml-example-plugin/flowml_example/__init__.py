"""Example flowml plugin."""
