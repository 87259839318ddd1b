"""prado-tiny: tiny embedding-free NLU models shipped as int8 TFLite."""
import setuptools

# Pins follow ../shared/STACK.md: this exact set installs together and `pip check` is clean.
# tensorflow (not tensorflow-cpu) because tf-keras and tensorflow-text require that distribution.
INSTALL_REQUIRES = [
    "tensorflow==2.21.0",
    "tf-keras==2.21.0",
    "tensorflow-model-optimization==0.8.1",
    "tensorflow-text==2.21.1",
    "tensorflow-datasets==4.9.10",
    "ai-edge-litert==2.3.0",
    # tf.summary (prado-train logs) needs TensorBoard; tensorflow 2.21 no longer pulls it in.
    "tensorboard==2.21.0",
    "absl-py>=1.2,<2",
    "numpy>=1.26",
    # prado-bench's plot of accuracy against size and latency (PNG, Agg backend, no display).
    "matplotlib==3.11.2",
]

setuptools.setup(
    name="prado-tiny",
    version="0.1.0",
    description="Train tiny embedding-free NLU models (pNLP-Mixer, pQRNN) and export them as int8 TFLite.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["prado_tiny", "prado_tiny.*"]),
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require={"dev": ["pytest>=8", "hypothesis>=6.100"]},
    entry_points={
        "console_scripts": [
            "prado-data=prado_tiny.data_main:run",
            "prado-train=prado_tiny.train_main:run",
            "prado-eval=prado_tiny.eval_main:run",
            "prado-export=prado_tiny.export_main:run",
            "prado-bench=prado_tiny.bench_main:run",
            "prado-compress=prado_tiny.compress_main:run",
        ]
    },
    package_data={"prado_tiny": ["py.typed"]},
    license="Apache-2.0",
)
