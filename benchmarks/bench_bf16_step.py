"""Keras mixed precision on the CPU: train steps of `best`'s fine-tuned part (MobileNetV2 from block_4 + head) on
random maps of the cached shape, at float32 or mixed_bfloat16 (AMX / AVX-512 BF16 through oneDNN).

    python benchmarks/bench_bf16_step.py float32; python benchmarks/bench_bf16_step.py mixed_bfloat16
"""
import sys, time
import numpy as np, keras
policy = sys.argv[1]
keras.mixed_precision.set_global_policy(policy)
from skinml.model import build_backbone_top, build_head, set_top_trainable
W = "/work/shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
top = build_backbone_top(224, W, 1.0, "block_4")
head = build_head(top.input_shape[1:], 0.2, 42, top)
set_top_trainable(head, True)
head.compile(optimizer=keras.optimizers.Adam(1e-4), loss="categorical_crossentropy")
x = np.random.default_rng(0).normal(size=(32 * 30, *top.input_shape[1:])).astype("float32")
y = keras.utils.to_categorical(np.random.default_rng(1).integers(7, size=len(x)), 7)
head.fit(x[:64], y[:64], batch_size=32, verbose=0)  # trace
times = []
for _ in range(3):
    t = time.perf_counter(); head.fit(x, y, batch_size=32, verbose=0); times.append(time.perf_counter() - t)
train = sorted(times)[1]
t = time.perf_counter(); head.predict(x, batch_size=32, verbose=0); infer = time.perf_counter() - t
print(f"{policy}: train {len(x)/train:.1f} samples/s, predict {len(x)/infer:.1f} samples/s, input {top.input_shape}")
