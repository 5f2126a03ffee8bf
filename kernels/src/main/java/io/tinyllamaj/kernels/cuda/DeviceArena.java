package io.tinyllamaj.kernels.cuda;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * All device memory of one backend: parameters, gradients, optimizer state, activations and
 * scratch are ranges of it, 256-byte aligned, freed together when the backend closes, never by
 * the garbage collector. A range given back with {@link #free} is reused by the next request of
 * the same rounded size (a scratch buffer that grew, a tensor a caller released).
 *
 * <p>Not thread-safe, as the backend. Freed ranges are reused in stream order: everything runs on
 * the backend's one stream, so work queued after a reuse runs after the work that read the range
 * before.
 */
final class DeviceArena implements AutoCloseable {

    static final long ALIGNMENT = 256;

    private final CudaDriver driver;
    private final Map<Long, ArrayDeque<Long>> freed = new HashMap<>(); // rounded size -> addresses
    private final List<Long> allocations = new ArrayList<>();
    private long handedOut;

    DeviceArena(CudaDriver driver, int device) {
        this.driver = driver;
    }

    /** {@code bytes} of device memory (contents undefined), 256-byte aligned. */
    long allocate(long bytes) {
        long size = roundUp(Math.max(bytes, 1), ALIGNMENT);
        ArrayDeque<Long> same = freed.get(size);
        long address;
        if (same != null && !same.isEmpty()) {
            address = same.pop();
        } else {
            address = driver.memAlloc(size);
            allocations.add(address);
        }
        handedOut += size;
        return address;
    }

    /** Gives a range of {@link #allocate}({@code bytes}) back for reuse. */
    void free(long address, long bytes) {
        long size = roundUp(Math.max(bytes, 1), ALIGNMENT);
        handedOut -= size;
        freed.computeIfAbsent(size, s -> new ArrayDeque<>()).push(address);
    }

    /** Bytes handed out and not given back. */
    long inUse() {
        return handedOut;
    }

    /** Call with the stream idle (the backend synchronizes before closing). */
    @Override
    public void close() {
        for (long address : allocations) {
            driver.memFree(address);
        }
        allocations.clear();
        freed.clear();
    }

    private static long roundUp(long value, long multiple) {
        return (value + multiple - 1) / multiple * multiple;
    }
}
