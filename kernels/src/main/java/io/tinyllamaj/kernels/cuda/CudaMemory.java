package io.tinyllamaj.kernels.cuda;

import io.tinyllamaj.kernels.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * The backend's tensors: zero-filled ranges of its {@link DeviceArena}, the copies between host
 * arrays and them (bf16 rounded to nearest even on the way in, widened exactly on the way out), and
 * fill and copy. Uploads and downloads wait for the stream; everything else is queued on it.
 */
final class CudaMemory {

    private final CudaDriver driver;
    private final MemorySegment stream;
    private final DeviceArena arena;

    CudaMemory(CudaDriver driver, MemorySegment stream, DeviceArena arena) {
        this.driver = driver;
        this.stream = stream;
        this.arena = arena;
    }

    /** A new zero-filled tensor of {@code length} fp32 (or bf16) values. */
    CudaTensor allocate(long length, boolean bf16) {
        long bytes = Math.max(4, (length * (bf16 ? 2 : Float.BYTES) + 3) / 4 * 4);
        long address = arena.allocate(bytes);
        driver.memsetD32Async(address, 0, bytes / 4, stream);
        return new CudaTensor(address, length, bf16, new CudaTensor.Allocation(this, address, length, bytes));
    }

    /** Gives a tensor's memory back to the arena; the tensor (a whole allocation, not a slice) must not be used again. */
    void release(CudaTensor t) {
        CudaTensor.Allocation a = t.allocation();
        if (t.address() != a.address || t.length() != a.length) {
            throw new IllegalArgumentException("release: " + t + " is a slice; only a whole tensor can be released");
        }
        if (a.released) {
            throw new IllegalStateException("release: " + t + " was released before");
        }
        a.released = true;
        arena.free(a.address, a.bytes);
    }

    /** The tensor as this backend's; anything else is refused in one line. */
    CudaTensor of(Tensor t) {
        if (t instanceof CudaTensor c && c.allocation().owner == this) {
            if (c.allocation().released) {
                throw new IllegalStateException("tensor " + t + " was released");
            }
            return c;
        }
        throw new IllegalArgumentException("tensor " + t + " does not belong to this CUDA backend");
    }

    void upload(CudaTensor d, float[] src, int srcOffset, int length) {
        try (Arena host = Arena.ofConfined()) {
            MemorySegment staged = host.allocate((long) length * d.elementBytes(), 16);
            if (d.bf16()) {
                for (int i = 0; i < length; i++) {
                    staged.setAtIndex(JAVA_SHORT, i, CudaBackend.toBf16(src[srcOffset + i]));
                }
            } else {
                MemorySegment.copy(src, srcOffset, staged, JAVA_FLOAT, 0, length);
            }
            driver.memcpyHtoDAsync(d.address(), staged, staged.byteSize(), stream);
            driver.streamSynchronize(stream);
        }
    }

    void download(CudaTensor s, float[] dst, int dstOffset, int length) {
        try (Arena host = Arena.ofConfined()) {
            MemorySegment staged = host.allocate((long) length * s.elementBytes(), 16);
            driver.memcpyDtoHAsync(staged, s.address(), staged.byteSize(), stream);
            driver.streamSynchronize(stream);
            if (s.bf16()) {
                for (int i = 0; i < length; i++) {
                    dst[dstOffset + i] = Float.intBitsToFloat(staged.getAtIndex(JAVA_SHORT, i) << 16);
                }
            } else {
                MemorySegment.copy(staged, JAVA_FLOAT, 0, dst, dstOffset, length);
            }
        }
    }

    void fill(CudaTensor c, float value) {
        if (c.length() > 0 && c.bf16()) {
            driver.memsetD16Async(c.address(), CudaBackend.toBf16(value), c.length(), stream);
        } else if (c.length() > 0) {
            driver.memsetD32Async(c.address(), Float.floatToRawIntBits(value), c.length(), stream);
        }
    }

    /** dst[0, src.length) = src, in the same storage type. */
    void copy(CudaTensor d, CudaTensor s) {
        if (s.length() > 0) {
            driver.memcpyDtoDAsync(d.address(), s.address(), s.bytes(), stream);
        }
    }
}
