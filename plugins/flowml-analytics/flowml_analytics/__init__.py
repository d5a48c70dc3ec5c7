"""flowml-analytics: video analytics as graph nodes (clips for 3D CNNs, top-k, rules, actions)."""
