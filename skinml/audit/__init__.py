"""The data audit: exact and near-duplicate images, the groups they imply, label suspects and leaks across sets
(docs/datasets.md, "Audit the data"). Compute only: every function returns plain values."""
