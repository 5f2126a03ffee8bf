package io.tinyllamaj.model.torch;

import java.util.Arrays;
import java.util.Optional;

/** The storage element types a state dict may hold, by the torch storage class a pickle names. */
public enum TorchDType {
    F32("FloatStorage", 4), F16("HalfStorage", 2), BF16("BFloat16Storage", 2), I64("LongStorage", 8);

    final String storageClass;
    public final int bytes;

    TorchDType(String storageClass, int bytes) {
        this.storageClass = storageClass;
        this.bytes = bytes;
    }

    static Optional<TorchDType> ofStorageClass(String name) {
        return Arrays.stream(values()).filter(t -> t.storageClass.equals(name)).findFirst();
    }
}
