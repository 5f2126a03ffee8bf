package io.tinyllamaj.model.hf;

import java.io.IOException;
import java.util.Set;

/** One weight file of a Hugging Face directory, safetensors or PyTorch: named tensors read as fp32. */
interface WeightFile extends AutoCloseable {

    Set<String> names();

    /** Converts tensor {@code name} to fp32 into dst[dstOffset ...], checking its shape first. */
    void readInto(String name, long[] expectedShape, float[] dst, int dstOffset) throws IOException;

    @Override
    void close() throws IOException;
}
