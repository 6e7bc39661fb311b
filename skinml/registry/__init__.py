"""Layer 10, registry: registered versions and their aliases, the promotion rule with its paired bootstrap,
and the model card."""
