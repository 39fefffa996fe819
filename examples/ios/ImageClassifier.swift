// Classifies camera frames with an edgeresnet `--image-input` Core ML package.
//
// The package has an image input ("image", the input size square, RGB) and is a
// classifier: Core ML scales and normalises the pixels inside, and Vision returns the
// labels it carries with their probabilities. Xcode generates a class named after the
// file (resnet20-coreml-fp16.mlpackage -> `resnet20_coreml_fp16`).
import CoreML
import CoreVideo
import ImageIO
import Vision

final class ImageClassifier {
    private let request: VNCoreMLRequest

    init(model: MLModel) throws {
        request = VNCoreMLRequest(model: try VNCoreMLModel(for: model))
        // The model was trained on centred squares: crop the frame's centre, then scale it
        // to the input size. (For an ImageNet model, crop input_size / resize of it first
        // to match the manifest's "preprocessing": Vision's centerCrop takes the largest square.)
        request.imageCropAndScaleOption = .centerCrop
    }

    /// The `top` most probable labels of a camera frame, most probable first.
    func classify(_ frame: CVPixelBuffer, orientation: CGImagePropertyOrientation = .right,
                  top: Int = 3) throws -> [(label: String, probability: Float)] {
        let handler = VNImageRequestHandler(cvPixelBuffer: frame, orientation: orientation)
        try handler.perform([request])
        let observations = request.results as? [VNClassificationObservation] ?? []
        return observations.prefix(top).map { ($0.identifier, $0.confidence) }
    }
}

// Use, e.g. in an AVCaptureVideoDataOutputSampleBufferDelegate:
//
//   let classifier = try ImageClassifier(model: resnet20_coreml_fp16(configuration: MLModelConfiguration()).model)
//
//   func captureOutput(_ output: AVCaptureOutput, didOutput sampleBuffer: CMSampleBuffer,
//                      from connection: AVCaptureConnection) {
//       guard let frame = CMSampleBufferGetImageBuffer(sampleBuffer),
//             let best = try? classifier.classify(frame).first else { return }
//       print("\(best.label) \(best.probability)")
//   }
