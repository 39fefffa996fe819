// Classifies camera frames with an edgeresnet `--image-input` .tflite file.
//
// The file takes a uint8 RGB image of its input size ([1, size, size, 3], NHWC) and
// normalises it itself, so the app only crops and scales; it returns class
// probabilities ([1, classes]: float32, or uint8/int8 with the scale and zero point the
// manifest records when exported with --io-dtype). These are the specs manifest.json
// records under "input" and "output"; the code reads them from the file, not from here.
package com.example.edgeresnet

import android.content.Context
import android.graphics.Bitmap
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel

class ImageClassifier(
    context: Context,
    modelAsset: String,                 // e.g. "resnet20-tflite-int8.tflite" in src/main/assets
    private val labels: List<String>,   // manifest.json "labels", one per line in assets/labels.txt
    threads: Int = 2,
    // Part of the frame's shorter side the model sees: 1.0 for CIFAR models (whole image
    // scaled), input_size / resize from the manifest for ImageNet ones (224 / 256 = 0.875).
    private val cropFraction: Float = 1.0f,
) : AutoCloseable {

    private val interpreter = Interpreter(mapAsset(context, modelAsset), Interpreter.Options().setNumThreads(threads))
    private val inputTensor = interpreter.getInputTensor(0)
    private val outputTensor = interpreter.getOutputTensor(0)
    val inputSize: Int = inputTensor.shape()[1]
    private val input = ByteBuffer.allocateDirect(inputSize * inputSize * 3).order(ByteOrder.nativeOrder())
    private val output = ByteBuffer.allocateDirect(outputTensor.numBytes()).order(ByteOrder.nativeOrder())
    private val pixels = IntArray(inputSize * inputSize)

    init {
        require(inputTensor.dataType() == DataType.UINT8 && inputTensor.shape().contentEquals(intArrayOf(1, inputSize, inputSize, 3))) {
            "$modelAsset takes ${inputTensor.dataType()} ${inputTensor.shape().contentToString()}: export it with --image-input"
        }
        require(outputTensor.shape().last() == labels.size) { "$modelAsset has ${outputTensor.shape().last()} classes, labels ${labels.size}" }
    }

    /** The `top` most probable labels of a camera frame (ARGB_8888), most probable first. */
    fun classify(frame: Bitmap, top: Int = 3): List<Pair<String, Float>> {
        val side = (minOf(frame.width, frame.height) * cropFraction).toInt()
        val square = Bitmap.createBitmap(frame, (frame.width - side) / 2, (frame.height - side) / 2, side, side)
        val image = Bitmap.createScaledBitmap(square, inputSize, inputSize, true)
        image.getPixels(pixels, 0, inputSize, 0, 0, inputSize, inputSize)
        input.rewind()
        for (argb in pixels) {  // RGB bytes, 0-255: no normalisation here, the model does it
            input.put((argb shr 16 and 0xFF).toByte())
            input.put((argb shr 8 and 0xFF).toByte())
            input.put((argb and 0xFF).toByte())
        }
        input.rewind()
        output.rewind()
        interpreter.run(input, output)
        val probabilities = probabilities()
        return probabilities.indices.sortedByDescending { probabilities[it] }.take(top).map { labels[it] to probabilities[it] }
    }

    private fun probabilities(): FloatArray {
        output.rewind()
        val n = labels.size
        return when (outputTensor.dataType()) {
            DataType.FLOAT32 -> FloatArray(n).also { output.asFloatBuffer().get(it) }
            DataType.UINT8, DataType.INT8 -> {  // quantized: real = scale * (q - zero_point)
                val q = outputTensor.quantizationParams()
                val unsigned = outputTensor.dataType() == DataType.UINT8
                FloatArray(n) { i ->
                    val raw = output.get(i).toInt()
                    q.scale * ((if (unsigned) raw and 0xFF else raw) - q.zeroPoint)
                }
            }
            else -> error("unexpected output type ${outputTensor.dataType()}")
        }
    }

    override fun close() = interpreter.close()

    private companion object {
        fun mapAsset(context: Context, name: String): MappedByteBuffer =
            context.assets.openFd(name).use { fd ->
                FileInputStream(fd.fileDescriptor).channel.use {
                    it.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
                }
            }
    }
}
