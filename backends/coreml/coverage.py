"""The Core ML column of docs/layers.md (see kcc.frontends.keras.coverage).

Every row of the layer table also runs Keras -> Core ML -> kcc's Core ML runtime
(tests/coreml_backend/test_coreml_keras_layers.py), so a class covered by rows
converts; the notes say where the model leaves specification 1 or where the
runtime cannot check the numbers yet.
"""
from __future__ import annotations

from kcc.frontends.keras.coverage import register_backend_coverage

# Keras class -> note for the Core ML column.
NOTES: dict[str, str] = {
    "Conv3D": "yes (convolution3d, spec 5)",
    "Conv3DTranspose": "yes (convolution3d, spec 5)",
    "Convolution3D": "yes (convolution3d, spec 5)",
    "Convolution3DTranspose": "yes (convolution3d, spec 5)",
    "MaxPooling3D": "yes (pooling3d, spec 5)",
    "MaxPool3D": "yes (pooling3d, spec 5)",
    "AveragePooling3D": "yes (pooling3d, spec 5)",
    "AvgPool3D": "yes (pooling3d, spec 5)",
    "GRU": "yes (reset_after=False: gru layer, spec 1; True: unrolled, spec 4)",
    "ConvLSTM1D": "yes (unrolled, spec 4)",
    "ConvLSTM2D": "yes (unrolled, spec 4)",
    "ConvLSTM3D": "no: 3-D steps are not unrolled",
    "LayerNormalization": "yes (all or spatial axes: mvn, spec 1; others: layerNormalization, spec 4)",
}


def coreml_coverage(class_name: str, rows: list[str]) -> str:
    """"yes" when test rows (or the recurrent/lambda test folders) cover the class; "" when nothing does."""
    if class_name in NOTES:
        return NOTES[class_name]
    return "yes" if rows and rows != ["(none)"] else ""


register_backend_coverage("coreml", coreml_coverage)
