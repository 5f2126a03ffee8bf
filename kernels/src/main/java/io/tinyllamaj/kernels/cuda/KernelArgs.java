package io.tinyllamaj.kernels.cuda;

import io.tinyllamaj.kernels.cuda.KernelSignature.Param;

import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The parameter block of one launch, filled in the kernel's parameter order: each value must have
 * the type its signature declares at that position, and the launch needs all of them, so a
 * mismatch is an exception naming the kernel and the position, never a wrong value on the GPU.
 * Each value takes an 8-byte slot of a block reused by every launch (cuLaunchKernel copies it).
 */
final class KernelArgs {

    private final KernelModule module;
    private final MemorySegment values;
    private Kernel kernel;
    private int count;

    KernelArgs(KernelModule module, MemorySegment values) {
        this.module = module;
        this.values = values;
    }

    KernelArgs start(Kernel k) {
        kernel = k;
        count = 0;
        return this;
    }

    KernelArgs ptr(long address) {
        values.set(JAVA_LONG, slot(Param.PTR), address);
        return this;
    }

    KernelArgs i32(int value) {
        return lowHalf(Param.I32, value);
    }

    KernelArgs i64(long value) {
        values.set(JAVA_LONG, slot(Param.I64), value);
        return this;
    }

    KernelArgs f32(float value) {
        return lowHalf(Param.F32, Float.floatToRawIntBits(value));
    }

    /** A 4-byte value (an int, or a float's bits) at the start of its slot, the rest of the slot zeroed. */
    private KernelArgs lowHalf(Param type, int bits) {
        long at = slot(type);
        values.set(JAVA_LONG, at, 0L);
        values.set(JAVA_INT, at, bits);
        return this;
    }

    private long slot(Param type) {
        var params = kernel.signature.params();
        if (count >= params.size()) {
            throw new IllegalArgumentException(kernel + ": more than its " + params.size() + " arguments");
        }
        if (params.get(count) != type) {
            throw new IllegalArgumentException(kernel + ": argument " + count + " is " + params.get(count) + ", not " + type);
        }
        return 8L * count++;
    }

    /** Queues the kernel on the stream: grid (x, y, z) of blocks of {@code block} threads. */
    void launch(int gridX, int gridY, int gridZ, int block, int sharedBytes) {
        int expected = kernel.signature.params().size();
        if (count != expected) {
            throw new IllegalArgumentException(kernel + ": " + count + " of its " + expected + " arguments given");
        }
        module.launch(kernel, gridX, gridY, gridZ, block, sharedBytes);
    }

    /** A 1-D grid-stride launch over n elements: 256 threads per block, at most 16384 blocks. */
    void launchFlat(long n) {
        int block = 256;
        long blocks = Math.max(1, Math.min((n + block - 1) / block, 16384));
        launch((int) blocks, 1, 1, block, 0);
    }
}
