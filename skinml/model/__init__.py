"""Layer 3, model: the network (MobileNetV2 extractor, head, temperature), where its weights come from, and
where the frozen backbone runs (OpenVINO or TensorFlow)."""
