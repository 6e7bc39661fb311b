"""Layer 4, features: the frozen backbone's features of images, extracted a batch at a time, cached by content,
and read back as Keras batches."""
