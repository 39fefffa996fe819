"""Classify images with the TFLite Task Library, as an Android app using it would.

Needs tflite-support (`pip install --no-deps tflite-support==0.4.4 flatbuffers numpy
"protobuf<4" pillow` in a separate virtual environment: it pins protobuf below
TensorFlow's). Prints the top class of each image by the labels packed in the file.

    python check_with_task_library.py runs/app/tflite-int8/resnet20-tflite-int8.tflite cat.png dog.png
"""

from __future__ import annotations

import sys

from tensorflow_lite_support.python.task.core import base_options
from tensorflow_lite_support.python.task.vision import image_classifier
from tensorflow_lite_support.python.task.vision.core import tensor_image


def main(model: str, *images: str) -> None:
    options = image_classifier.ImageClassifierOptions(base_options=base_options.BaseOptions(file_name=model))
    classifier = image_classifier.ImageClassifier.create_from_options(options)
    for path in images:
        result = classifier.classify(tensor_image.TensorImage.create_from_file(path))
        best = result.classifications[0].categories[0]
        print(f"{path}: {best.category_name} ({best.index}) {best.score:.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
